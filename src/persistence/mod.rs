//! Persistence: Redis-format snapshots (RDB) of the store, written crash-safely.
//!
//! ```text
//! config.rs the settings (dir, dbfilename, save, rdbcompression, ...), Redis names
//! rdb/     the RDB codec: encode.rs (writer), decode.rs (reader), skip.rs (types cstore skips)
//! file.rs  crash-safe replacement of the snapshot file
//! progress.rs how far a startup load has read (INFO's loading_* fields)
//! snapshot.rs the store to its file (the engine's point-in-time cut) and back at startup
//! rules.rs `save` rules ("3600 1 300 100 60 10000") and when they call for a save
//! ```
//!
//! The guarantee: a snapshot file is either the previous complete one or the new complete
//! one, never a mix, whatever fails and whenever the process dies; and it is Redis's own
//! format, so redis-server 7 and its tools read it, and cstore reads what they write.
//!
//! How it is tested: unit tests round-trip every string encoding and check that random
//! corruption and truncation give errors, never panics; `tests/persistence.rs` uses the real
//! Redis as the oracle (`redis-check-rdb` accepts every file cstore writes, `redis-server`
//! loads it with every key, value and TTL, and cstore loads what `redis-server` saves),
//! and checks restarts, failed saves (previous file intact, MISCONF) and corrupt files.

pub mod aof;
pub mod config;
pub mod file;
pub mod progress;
pub mod rdb;
pub mod rules;
pub mod snapshot;
