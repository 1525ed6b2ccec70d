//! `cstore serve`: the Redis-protocol server on the engine.
//!
//! Bytes flow one way: socket -> `frame` (complete requests, zero-copy arguments) ->
//! command table -> engine -> `reply` (RESP2 or RESP3) -> socket.

pub mod admin; // admin HTTP: /healthz, /readyz, /metrics on their own port
mod aof; // the append-only file: logging writes, fsync policies, BGREWRITEAOF
pub mod bind; // listening sockets: `::` is IPv6 and IPv4 both, IPv4 only on a host without IPv6
pub(crate) mod command; // the command table and one file per command family
pub mod config; // ServerConfig (defaults < file < env/flags) and CONFIG GET/SET runtime settings
mod connection; // one client: read, execute every buffered request, write once
pub mod frame; // request decoder: complete requests from the read buffer, zero-copy arguments
mod latch; // one-way signals tasks wait for (shutdown's drain; a client's eviction or shutdown)
mod lazyfree; // UNLINK frees large collections on a background thread
mod listener; // bind, accept within maxclients, drain on shutdown
pub mod metrics; // Prometheus metrics, lock-free on the command path
pub mod output; // a client's pending replies: encoded bytes and values by reference, hard limit
mod persistence; // SAVE/BGSAVE, save rules, MISCONF, the startup load and the final save
mod reconfigure; // CONFIG SET strategy|shards: a thread that migrates the store live
pub mod reply; // reply encoder into the output buffer, RESP2 or RESP3 as negotiated by HELLO
pub mod resp_value; // client side of RESP: reply decoder and command encoder, for tests and tools
mod session; // per-client state and the client list
mod state; // what connections share

pub use listener::{LOAD_FAILED, Server};
