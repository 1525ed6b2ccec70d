//! The concurrent map: one linearizable key-value API over a configurable locking strategy
//! and shard count.
//!
//! ```
//! use cstore::engine::{SetOptions, Store, Strategy};
//!
//! let store = Store::builder().strategy(Strategy::RwLock).shards(32).build()?;
//! store.set(b"greeting", "hello", SetOptions::default())?;
//! assert_eq!(store.get(b"greeting")?.as_deref(), Some(&b"hello"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Keys and strings are stored as [`CompactBytes`] (`compact.rs`); a key holds a [`Value`]
//! (`value.rs`): a string, or a persistent hash (`hash.rs`) or set (`set.rs`) ordered for
//! SCAN by `member.rs`. Layout: `shard.rs` defines
//! what a shard kind must do and the sharded container; `locked.rs` (Mutex, RwLock),
//! `lockfree.rs` and `cow.rs` are the kinds; `kinds.rs` is one engine (a kind times a shard
//! count) and its write rule; `store.rs` routes a key to the engine that holds it;
//! `migration.rs` moves a running store to another strategy or shard count, live, and
//! `snapshot.rs` takes point-in-time snapshots of it, both through `gates.rs`; `transaction.rs`
//! makes a group of operations one transaction, and `watch.rs` tells WATCHed keys' changes; `ops.rs` is
//! every command, written once over two primitives (read, and atomic read-modify-write) so that all
//! strategies share one semantics; `scan.rs` has cursors and glob patterns; `sweeper.rs`
//! is active expiry; `databases.rs` numbers several stores as Redis's databases and
//! shares what spans them; `sync.rs` supplies the locks and atomics, which shuttle's replace in a
//! build with the test-only `shuttle` feature (`tests/shuttle.rs`).

mod clock;
mod compact;
mod config;
mod cow;
mod databases;
mod entry;
mod float;
mod gates;
mod hash;
mod kinds;
mod locked;
mod lockfree;
mod member;
mod migration;
mod multikey;
mod ops;
mod scan;
mod set;
mod shard;
mod snapshot;
mod store;
mod sweeper;
mod sync;
mod transaction;
mod value;
mod watch;

pub use clock::{Clock, ManualClock};
pub use compact::{CompactBytes, INLINE_LEN, MAX_STRING_LEN};
pub use config::{ConfigError, EngineConfig, MAX_SHARDS, Strategy};
pub use databases::{DEFAULT_DATABASES, Databases, MAX_DATABASES};
pub use float::{Float, parse_float};
pub use hash::Hash;
pub use migration::{EngineStatus, MIGRATION_CHUNK, MigrationProgress, MigrationReport};
pub use ops::{
    ExpireCondition, SetCondition, SetExpiry, SetOptions, SetOutcome, StoreError, Ttl, TtlUpdate, parse_integer,
};
pub use scan::glob_match;
pub use set::Set;
pub use shard::thread_lock_wait_ns;
pub use snapshot::{PointInTime, SNAPSHOT_CHUNK, SnapshotEntry, SnapshotError, SnapshotReport};
pub use store::{RemovalHook, Store, StoreBuilder, StoreStats};
pub use sweeper::{SweepReport, Sweeper};
pub use transaction::{Exclusive, Pass};
pub use value::{EncodingLimits, Value, ValueType};
pub use watch::Watcher;
