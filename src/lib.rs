//! cstore: a concurrency-aware key-value store that speaks the Redis protocol and runs
//! itself on Kubernetes.
//!
//! ```text
//! src/engine/   the concurrent map: Strategy, Store, one file per shard kind, expiry, scan
//! src/bench/    `cstore bench`: in-process strategy comparison for a workload mix; its
//!               workload driver is shared with benches/workloads.rs
//! src/operator/ `cstore operator` and `cstore crd`: crd.rs (the ConcurrentStore types),
//!               resources.rs (pure: store -> desired objects), apply.rs, reconcile.rs, status.rs
//! src/main.rs   thin: parse the command line, call into the library
//! ```

pub mod bench;
pub mod engine;
pub mod operator;
pub mod persistence;
pub mod server;
pub mod telemetry;
