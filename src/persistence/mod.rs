//! Persistence: Redis-format snapshots (RDB) of the store, written crash-safely.
//!
//! ```text
//! config.rs the settings (dir, dbfilename, save, rdbcompression, ...), Redis names
//! rdb/     the RDB codec: encode.rs (writer), decode.rs (reader), skip.rs (types cstore skips)
//! file.rs  crash-safe replacement of the snapshot file
//! progress.rs how far a startup load has read (INFO's loading_* fields)
//! snapshot.rs the databases to their file (the engine's point-in-time cut) and back at startup
//! rules.rs `save` rules ("3600 1 300 100 60 10000") and when they call for a save
//! aof/     the append-only file (its own module page)
//! redis_oracle.rs (tests) a redis-server of the tests' own, the oracle
//! ```
//!
//! Every numbered database is saved and loaded, each in its own section as Redis writes
//! them (SELECTDB n in an RDB, SELECT n in an AOF); a file written by a server with more
//! databases than this one's `databases` stops the load, naming the key and database,
//! unless `rdb-skip-other-dbs` skips the keys of those databases (in an RDB file or an AOF's
//! RDB preamble; AOF commands on them always stop it).
//!
//! The guarantee: a snapshot file is either the previous complete one or the new complete
//! one, never a mix, whatever fails and whenever the process dies; and it is Redis's own
//! format, so redis-server 7 and its tools read it, and cstore reads what they write.
//!
//! How it is tested: unit tests round-trip every string encoding and keys in several
//! databases, and check that random corruption and truncation give errors, never panics;
//! `rdb/tests/redis_server.rs` and `aof/redis_server.rs` exchange files holding several
//! databases with redis-server 7 both ways; `tests/persistence.rs` uses the real
//! Redis as the oracle (`redis-check-rdb` accepts every file cstore writes, `redis-server`
//! loads it with every key, value and TTL, and cstore loads what `redis-server` saves),
//! and checks restarts, failed saves (previous file intact, MISCONF) and corrupt files.

pub mod aof;
pub mod config;
pub mod file;
pub mod progress;
pub mod rdb;
#[cfg(test)]
mod redis_oracle;
pub mod rules;
pub mod snapshot;
#[cfg(test)]
mod test_support;
