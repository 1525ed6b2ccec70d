//! cstore: a concurrency-aware key-value store that speaks the Redis protocol and runs
//! itself on Kubernetes.
//!
//! ```text
//! src/engine/   the concurrent map: Strategy, Store, one file per shard kind, expiry, scan
//! src/bench.rs  `cstore bench`: in-process strategy comparison for a workload mix
//! src/main.rs   thin: parse the command line, call into the library
//! ```

pub mod engine;
pub mod server;
