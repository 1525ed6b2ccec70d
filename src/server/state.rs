//! What every connection shares: the databases, the settings that CONFIG SET may change, the
//! metrics and the client list; plus the server-wide checks commands rely on (password,
//! memory limit) and INFO.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::aof::Aof;
use super::command::CommandError;
use super::command::server::{InfoSection, redis_version};
use super::config::{MaxMemoryPolicy, RuntimeSettings, ServerConfig};
use super::latch::Latch;
use super::metrics::Metrics;
use super::persistence::Persistence;
use super::reconfigure::Reconfigurer;
use super::session::Clients;
use crate::engine::{Databases, Store};

/// Keys evicted per round under `allkeys-random`, and rounds per command at most: enough
/// to catch up with one large write, bounded so that one command never stalls.
const EVICTION_BATCH: usize = 16;
const EVICTION_ROUNDS: usize = 64;

pub(crate) struct ServerState {
    pub(crate) databases: Arc<Databases>,
    /// What a read of a database never used sees: an empty store, never written, so that
    /// reading a database does not create it (`command/mod.rs`, `Ctx::db`).
    pub(crate) never_used: Store,
    pub(crate) settings: Arc<RuntimeSettings>,
    pub(crate) metrics: Arc<Metrics>,
    /// Migrates the store when CONFIG SET changes strategy or shards.
    pub(crate) reconfigurer: Reconfigurer,
    pub(crate) clients: Arc<Clients>,
    pub(crate) config: ServerConfig,
    pub(crate) resp_addr: SocketAddr,
    pub(crate) started: Instant,
    pub(crate) connections_received: AtomicU64,
    pub(crate) rejected_connections: AtomicU64,
    pub(crate) persistence: Arc<Persistence>,
    pub(crate) aof: Arc<Aof>,
    /// SHUTDOWN's request to the server, with whether to save first.
    pub(crate) shutdown: ShutdownRequest,
}

/// What SHUTDOWN asks for; the server then stops as on SIGTERM.
#[derive(Default)]
pub(crate) struct ShutdownRequest {
    pub(crate) requested: tokio::sync::Notify,
    /// `None` (no SAVE/NOSAVE): save if save rules are set; `Some(save)`: as told.
    pub(crate) save: parking_lot::Mutex<Option<bool>>,
    /// Set once the server drains its connections: a connection waiting for a client to read
    /// its replies then waits a short linger, not its write timeout.
    draining: Latch,
}

impl ShutdownRequest {
    pub(crate) fn begin_drain(&self) {
        self.draining.set();
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.is_set()
    }

    /// Returns once the server drains its connections (at once if it already does).
    pub(crate) async fn drain_started(&self) {
        self.draining.wait().await;
    }
}

impl ServerState {
    /// Database `number`, which SELECT has checked exists.
    pub(crate) fn database(&self, number: usize) -> &Store {
        self.databases.get(number).expect("a client's database number is always in range")
    }

    /// Enforces `maxmemory` before a command that may grow the data set: refuses it under
    /// `noeviction`, evicts random keys under `allkeys-random`.
    /// Client buffers count toward the limit, as in Redis (whose `used_memory` includes them),
    /// so that keys make way for them rather than the process outgrowing `maxmemory`.
    pub(crate) fn make_room(&self) -> Result<(), CommandError> {
        let limit = self.settings.max_memory();
        if limit == 0 || self.used_memory() <= limit {
            return Ok(());
        }
        if self.settings.max_memory_policy() == MaxMemoryPolicy::Noeviction {
            return Err(CommandError::OutOfMemory);
        }
        let mut evicted_any = false;
        for _ in 0..EVICTION_ROUNDS {
            let evicted = self.databases.evict_random(EVICTION_BATCH);
            evicted_any |= evicted > 0;
            if evicted == 0 || self.used_memory() <= limit {
                break;
            }
        }
        // Like Redis, a command is let through while eviction makes progress; only a store
        // with nothing left to evict refuses it.
        if self.used_memory() <= limit || evicted_any { Ok(()) } else { Err(CommandError::OutOfMemory) }
    }

    /// Client eviction against `maxmemory-clients` as it is now (see [`Clients::evict_over`]).
    pub(crate) fn evict_clients(&self) -> usize {
        self.clients.evict_over(self.settings.client_memory_limit())
    }

    /// The memory `maxmemory` limits: keys and values, and every client's buffers.
    pub(crate) fn used_memory(&self) -> u64 {
        self.databases.memory_bytes() + self.clients.memory()
    }

    /// INFO's text for the requested sections (none, "default", "all" or "everything"
    /// mean every section).
    pub(crate) fn info(&self, requested: &[String]) -> String {
        let every =
            requested.is_empty() || requested.iter().any(|s| matches!(s.as_str(), "all" | "default" | "everything"));
        let wanted = |name: &str| every || requested.iter().any(|s| s == name);
        let stats = self.databases.stats();
        let uptime = self.started.elapsed().as_secs();
        let mut sections = Vec::new();
        if wanted("server") {
            sections.push(
                InfoSection::new("Server")
                    .field("redis_version", redis_version())
                    .field("cstore_version", env!("CARGO_PKG_VERSION"))
                    .field("redis_mode", "standalone")
                    .field("os", std::env::consts::OS)
                    .field("arch_bits", usize::BITS)
                    .field("process_id", std::process::id())
                    .field("tcp_port", self.resp_addr.port())
                    .field("uptime_in_seconds", uptime)
                    .field("uptime_in_days", uptime / 86_400)
                    .finish(),
            );
        }
        if wanted("clients") {
            // Redis's "recent" maxima: the largest buffers of connected clients over their last
            // few seconds (each connection starts a new window when it considers trimming).
            let (recent_input, recent_output) = self
                .clients
                .all()
                .iter()
                .map(|client| client.recent_max())
                .fold((0, 0), |(input, output), (i, o)| (input.max(i), output.max(o)));
            sections.push(
                InfoSection::new("Clients")
                    .field("connected_clients", self.clients.len())
                    .field("maxclients", self.settings.max_clients())
                    .field("client_recent_max_input_buffer", recent_input)
                    .field("client_recent_max_output_buffer", recent_output)
                    .finish(),
            );
        }
        if wanted("memory") {
            let limit = self.settings.max_memory();
            let clients = self.clients.memory();
            let used = stats.memory_bytes + clients;
            sections.push(
                InfoSection::new("Memory")
                    .field("used_memory", used)
                    .field("used_memory_human", human_bytes(used))
                    .field("used_memory_dataset", stats.memory_bytes)
                    .field("mem_clients_slaves", 0)
                    .field("mem_clients_normal", clients)
                    .field("maxmemory", limit)
                    .field("maxmemory_human", human_bytes(limit))
                    .field("maxmemory_policy", self.settings.max_memory_policy().name())
                    .finish(),
            );
        }
        if wanted("persistence") {
            sections.push(self.persistence.info(|section| self.aof.info(section)));
        }
        if wanted("stats") {
            sections.push(
                InfoSection::new("Stats")
                    .field("total_connections_received", self.connections_received.load(Ordering::Relaxed))
                    .field("total_commands_processed", self.metrics.total_commands())
                    .field("rejected_connections", self.rejected_connections.load(Ordering::Relaxed))
                    .field("expired_keys", stats.expired_keys)
                    .field("evicted_keys", stats.evicted_keys)
                    .field("evicted_clients", self.clients.evicted())
                    .finish(),
            );
        }
        if wanted("keyspace") {
            let mut section = InfoSection::new("Keyspace");
            // By database number, those that hold keys, as Redis lists them.
            for number in 0..self.databases.count() {
                let Some(store) = self.databases.existing(number) else { continue };
                let db = store.stats();
                if db.keys > 0 {
                    section = section.field(
                        &format!("db{number}"),
                        format!("keys={},expires={},avg_ttl={}", db.keys, db.volatile_keys, store.avg_ttl_ms()),
                    );
                }
            }
            sections.push(section.finish());
        }
        if wanted("cstore") {
            let engine = self.databases.engine_status();
            let wanted = self.settings.engine();
            let progress = engine.migration;
            let last = engine.last_migration;
            sections.push(
                InfoSection::new("Cstore")
                    .field("strategy", engine.running.strategy)
                    .field("shards", engine.running.shards)
                    // Also 1 while a change waits for the migration under way to finish.
                    .field("migration_in_progress", u8::from(progress.is_some() || wanted != engine.running))
                    .field("migration_target_strategy", wanted.strategy)
                    .field("migration_target_shards", wanted.shards)
                    .field("migration_keys_moved", progress.map_or(0, |p| p.keys_moved))
                    .field("migration_keys_total", progress.map_or(0, |p| p.keys_total))
                    .field("migrations_completed", engine.migrations_completed)
                    .field("last_migration_duration_ms", last.map_or(0, |m| m.duration.as_millis()))
                    .field("last_migration_keys_moved", last.map_or(0, |m| m.keys_moved))
                    .field("last_migration_longest_pause_us", last.map_or(0, |m| m.longest_pause.as_micros()))
                    .field("version", env!("CARGO_PKG_VERSION"))
                    .field("lock_wait_seconds", format!("{:.6}", stats.lock_wait_ns as f64 / 1e9))
                    .field("published_versions", stats.published_versions.map_or("-".to_owned(), |v| v.to_string()))
                    .finish(),
            );
        }
        sections.join("\r\n")
    }
}

/// Bytes in Redis's human form (`1.50M`).
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes}B") } else { format!("{value:.2}{}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_like_redis() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(1023), "1023B");
        assert_eq!(human_bytes(1536), "1.50K");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.00M");
    }
}
