//! The settings Redis's `CONFIG SET` may change while the server runs, and the parameter
//! table behind `CONFIG GET` and `CONFIG SET`, with Redis 7's semantics and error texts.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::byte_size::parse_byte_size;
use super::tuning::{self, Tuning};
use super::{
    ConfigError, LimitUpdate, MAX_CLIENT_IDLE_TIMEOUT_SECS, MaxMemoryClients, MaxMemoryClientsError, MaxMemoryPolicy,
    OutputBufferLimits, OutputLimitError, Password, ServerConfig,
};
use crate::engine::{
    EncodingLimits, EngineConfig, Float, MAX_SHARDS, Strategy, glob_match, parse_float, parse_integer,
};
use crate::persistence::config::{AppendFsync, PersistenceConfig};
use crate::persistence::rules::{InvalidSaveRules, SaveRules};

/// Live values of the runtime-mutable settings. Every read is one atomic load (relaxed: each
/// setting stands alone, nothing is published through it), cheap enough for every command.
#[derive(Debug)]
pub struct RuntimeSettings {
    max_memory: AtomicU64,
    /// `MaxMemoryPolicy as u8`: an index into [`MaxMemoryPolicy::ALL`].
    max_memory_policy: AtomicU8,
    /// [`MaxMemoryClients::to_bits`]: read after every batch of requests that grew a buffer.
    max_memory_clients: AtomicU64,
    max_clients: AtomicU32,
    client_idle_timeout_secs: AtomicU64,
    client_write_timeout_secs: AtomicU64,
    /// Read by every connection once per batch of requests: one uncontended load.
    output_buffer_limits: ArcSwap<OutputBufferLimits>,
    tcp_keepalive_secs: AtomicU64,
    /// The `f64` ratio's bits.
    trace_sample_ratio: AtomicU64,
    require_pass: ArcSwapOption<Password>,
    /// The engine the store should run. Changing it starts a live migration (see
    /// `server/reconfigure.rs`), so the store may still run another one for a while.
    engine: Mutex<EngineConfig>,
    /// Fixed at startup, shown by CONFIG GET.
    bind: IpAddr,
    port: u16,
    databases: usize,
    max_bulk_len: u64,
    /// `save`, and whether it has any rule (read on every write while a save has failed).
    save: Mutex<SaveRules>,
    saves_configured: AtomicBool,
    rdbcompression: AtomicBool,
    rdbchecksum: AtomicBool,
    stop_writes_on_bgsave_error: AtomicBool,
    /// The AOF settings CONFIG SET may change; turning `appendonly` on or off takes effect
    /// when the AOF catches up (`server/aof.rs`), as in Redis.
    appendonly: AtomicBool,
    /// `AppendFsync` as an index into [`AppendFsync::ALL`].
    appendfsync: AtomicU8,
    auto_aof_rewrite_percentage: AtomicU64,
    auto_aof_rewrite_min_size: AtomicU64,
    aof_use_rdb_preamble: AtomicBool,
    /// Fixed at startup: `dir` and `dbfilename` are protected in Redis 7 (CONFIG SET refuses
    /// them), since a client that can choose where the server writes can overwrite any file
    /// the server may write.
    persistence: PersistenceConfig,
    /// The collection types' encoding thresholds (`tuning.rs`).
    tuning: Tuning,
    /// Held by CONFIG GET and CONFIG SET, so that two CONFIG SETs of several parameters each
    /// cannot interleave into a mix neither asked for, and CONFIG GET sees whole ones.
    config_command: Mutex<()>,
}

impl RuntimeSettings {
    /// The startup values, reading the password file if the configuration names one.
    pub fn from_config(config: &ServerConfig) -> Result<Self, ConfigError> {
        Ok(RuntimeSettings {
            max_memory: AtomicU64::new(config.max_memory),
            max_memory_policy: AtomicU8::new(config.max_memory_policy as u8),
            max_memory_clients: AtomicU64::new(config.max_memory_clients.to_bits()),
            max_clients: AtomicU32::new(config.max_clients),
            client_idle_timeout_secs: AtomicU64::new(config.client_idle_timeout_secs),
            client_write_timeout_secs: AtomicU64::new(config.client_write_timeout_secs),
            output_buffer_limits: ArcSwap::from_pointee(config.client_output_buffer_limit),
            tcp_keepalive_secs: AtomicU64::new(config.tcp_keepalive),
            trace_sample_ratio: AtomicU64::new(config.trace_sample_ratio.to_bits()),
            require_pass: ArcSwapOption::from_pointee(config.resolve_password()?),
            engine: Mutex::new(config.engine),
            bind: config.bind,
            port: config.port,
            databases: config.databases,
            max_bulk_len: config.max_bulk_len,
            save: Mutex::new(config.persistence.save.clone()),
            saves_configured: AtomicBool::new(!config.persistence.save.is_empty()),
            rdbcompression: AtomicBool::new(config.persistence.rdbcompression),
            rdbchecksum: AtomicBool::new(config.persistence.rdbchecksum),
            stop_writes_on_bgsave_error: AtomicBool::new(config.persistence.stop_writes_on_bgsave_error),
            appendonly: AtomicBool::new(config.persistence.appendonly),
            appendfsync: AtomicU8::new(fsync_index(config.persistence.appendfsync)),
            auto_aof_rewrite_percentage: AtomicU64::new(config.persistence.auto_aof_rewrite_percentage),
            auto_aof_rewrite_min_size: AtomicU64::new(config.persistence.auto_aof_rewrite_min_size),
            aof_use_rdb_preamble: AtomicBool::new(config.persistence.aof_use_rdb_preamble),
            persistence: config.persistence.clone(),
            tuning: Tuning::default(),
            config_command: Mutex::new(()),
        })
    }

    /// Memory limit in bytes; 0 means unlimited.
    pub fn max_memory(&self) -> u64 {
        self.max_memory.load(Relaxed)
    }

    pub fn max_memory_policy(&self) -> MaxMemoryPolicy {
        let index = usize::from(self.max_memory_policy.load(Relaxed));
        MaxMemoryPolicy::ALL.get(index).copied().unwrap_or_default()
    }

    /// `maxmemory-clients` as set (CONFIG GET).
    pub fn max_memory_clients(&self) -> MaxMemoryClients {
        MaxMemoryClients::from_bits(self.max_memory_clients.load(Relaxed))
    }

    /// The bytes all clients together may hold before the largest are disconnected, from
    /// `maxmemory-clients` and `maxmemory` as they are now; 0 means no limit.
    pub fn client_memory_limit(&self) -> u64 {
        self.max_memory_clients().limit(self.max_memory())
    }

    pub fn max_clients(&self) -> u32 {
        self.max_clients.load(Relaxed)
    }

    /// How long a client may stay idle; `None` never disconnects it.
    pub fn client_idle_timeout(&self) -> Option<Duration> {
        match self.client_idle_timeout_secs.load(Relaxed) {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        }
    }

    /// How long a client may leave its replies unread; `None` never disconnects it.
    pub fn client_write_timeout(&self) -> Option<Duration> {
        match self.client_write_timeout_secs.load(Relaxed) {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        }
    }

    /// `client-output-buffer-limit` as it is now.
    pub fn output_buffer_limits(&self) -> OutputBufferLimits {
        **self.output_buffer_limits.load()
    }

    /// The TCP keepalive interval for new connections; `None` turns keepalive off.
    pub fn tcp_keepalive(&self) -> Option<Duration> {
        match self.tcp_keepalive_secs.load(Relaxed) {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        }
    }

    /// Fraction of commands to trace, in 0..=1.
    pub fn trace_sample_ratio(&self) -> f64 {
        f64::from_bits(self.trace_sample_ratio.load(Relaxed))
    }

    /// The engine configuration asked for (CONFIG GET strategy / shards).
    pub fn engine(&self) -> EngineConfig {
        *self.engine.lock()
    }

    /// The persistence settings as they are now (CONFIG SET may have changed some).
    pub fn persistence(&self) -> PersistenceConfig {
        PersistenceConfig {
            save: self.save.lock().clone(),
            rdbcompression: self.rdbcompression.load(Relaxed),
            rdbchecksum: self.rdbchecksum.load(Relaxed),
            stop_writes_on_bgsave_error: self.stop_writes_on_bgsave_error.load(Relaxed),
            appendonly: self.appendonly(),
            appendfsync: self.appendfsync(),
            auto_aof_rewrite_percentage: self.auto_aof_rewrite_percentage.load(Relaxed),
            auto_aof_rewrite_min_size: self.auto_aof_rewrite_min_size.load(Relaxed),
            aof_use_rdb_preamble: self.aof_use_rdb_preamble.load(Relaxed),
            ..self.persistence.clone()
        }
    }

    /// `appendonly` as asked (the AOF may still be catching up with a change).
    pub fn appendonly(&self) -> bool {
        self.appendonly.load(Relaxed)
    }

    pub fn appendfsync(&self) -> AppendFsync {
        AppendFsync::ALL.get(usize::from(self.appendfsync.load(Relaxed))).copied().unwrap_or_default()
    }

    /// Whether `save` has any rule: the condition, with `stop-writes-on-bgsave-error`, for
    /// refusing writes after a failed save, and for saving at shutdown.
    pub fn saves_configured(&self) -> bool {
        self.saves_configured.load(Relaxed)
    }

    pub fn stop_writes_on_bgsave_error(&self) -> bool {
        self.stop_writes_on_bgsave_error.load(Relaxed)
    }

    /// Whether clients must AUTH before running commands.
    pub fn auth_required(&self) -> bool {
        self.require_pass.load().is_some()
    }

    /// Whether `candidate` is the password; false when none is set. The SHA-256 digests are
    /// compared, not the passwords: the comparison then always covers 32 bytes, so its time
    /// reveals neither the password's length nor, through where the first difference is, its
    /// bytes (a matching digest prefix says nothing usable about the password).
    pub fn password_matches(&self, candidate: &[u8]) -> bool {
        self.require_pass.load().as_deref().is_some_and(|password| {
            let expected = Sha256::digest(password.expose().as_bytes());
            let given = Sha256::digest(candidate);
            // Every byte is looked at whatever the differences; black_box keeps the optimizer
            // from turning the fold into an early exit.
            let difference = expected.iter().zip(given.iter()).fold(0u8, |diff, (a, b)| diff | (a ^ b));
            std::hint::black_box(difference) == 0
        })
    }

    /// `CONFIG GET pattern [pattern ...]`: (name, value) pairs for every parameter matching
    /// any pattern (Redis globs, case-insensitive), each parameter once. As in Redis 7, a
    /// pattern without glob characters is echoed as written; glob matches use canonical names.
    pub fn config_get(&self, patterns: &[&[u8]]) -> Vec<(String, String)> {
        let _consistent = self.config_command.lock();
        let mut matched: Vec<(String, &Parameter)> = Vec::new();
        let mut add = |name: String, parameter: &'static Parameter| {
            if !matched.iter().any(|(_, seen)| seen.name == parameter.name) {
                matched.push((name, parameter));
            }
        };
        for &pattern in patterns {
            if pattern.iter().any(|byte| matches!(byte, b'*' | b'?' | b'[')) {
                let pattern = pattern.to_ascii_lowercase();
                for parameter in all_parameters().filter(|p| glob_match(&pattern, p.name.as_bytes())) {
                    add(parameter.name.to_owned(), parameter);
                }
            } else if let Some(parameter) = lookup(pattern) {
                // Only an ASCII pattern can equal a parameter name, so this is lossless.
                add(String::from_utf8_lossy(pattern).into_owned(), parameter);
            }
        }
        matched.into_iter().map(|(name, parameter)| (name, (parameter.get)(self))).collect()
    }

    /// `CONFIG SET name value [name value ...]`, all or nothing as in Redis 7: every name is
    /// checked (known, settable, not repeated), then every value parsed, and only then is
    /// anything changed. The error is Redis's text without the leading `-`.
    pub fn config_set(&self, pairs: &[(&[u8], &[u8])]) -> Result<(), String> {
        let mut parsers: Vec<(&[u8], &'static Parameter, ParseValue)> = Vec::with_capacity(pairs.len());
        for &(name, _) in pairs {
            let Some(parameter) = lookup(name) else {
                let name = String::from_utf8_lossy(name);
                return Err(format!("ERR Unknown option or number of arguments for CONFIG SET - '{name}'"));
            };
            let Some(parse) = parameter.parse else {
                return Err(set_failed(name, "can't set immutable config"));
            };
            if parsers.iter().any(|(_, seen, _)| seen.name == parameter.name) {
                return Err(set_failed(name, "duplicate parameter"));
            }
            parsers.push((name, parameter, parse));
        }
        let changes = pairs
            .iter()
            .zip(parsers)
            .map(|(&(_, value), (name, _, parse))| parse(value).map_err(|reason| set_failed(name, &reason)))
            .collect::<Result<Vec<Change>, String>>()?;
        let _consistent = self.config_command.lock();
        for change in changes {
            self.apply(change);
        }
        Ok(())
    }

    fn apply(&self, change: Change) {
        match change {
            Change::MaxMemory(bytes) => self.max_memory.store(bytes, Relaxed),
            Change::MaxMemoryPolicy(policy) => self.max_memory_policy.store(policy as u8, Relaxed),
            Change::MaxMemoryClients(limit) => self.max_memory_clients.store(limit.to_bits(), Relaxed),
            Change::MaxClients(count) => self.max_clients.store(count, Relaxed),
            Change::ClientIdleTimeoutSecs(secs) => self.client_idle_timeout_secs.store(secs, Relaxed),
            Change::ClientWriteTimeoutSecs(secs) => self.client_write_timeout_secs.store(secs, Relaxed),
            Change::OutputBufferLimit(update) => {
                let limits = self.output_buffer_limits().updated(&update);
                self.output_buffer_limits.store(limits.into());
            }
            Change::TcpKeepalive(secs) => self.tcp_keepalive_secs.store(secs, Relaxed),
            Change::TraceSampleRatio(ratio) => self.trace_sample_ratio.store(ratio.to_bits(), Relaxed),
            Change::RequirePass(password) => self.require_pass.store(password.map(Into::into)),
            Change::Strategy(strategy) => self.engine.lock().strategy = strategy,
            Change::Shards(shards) => self.engine.lock().shards = shards,
            Change::Save(rules) => {
                self.saves_configured.store(!rules.is_empty(), Relaxed);
                *self.save.lock() = rules;
            }
            Change::RdbCompression(on) => self.rdbcompression.store(on, Relaxed),
            Change::RdbChecksum(on) => self.rdbchecksum.store(on, Relaxed),
            Change::StopWritesOnBgsaveError(on) => self.stop_writes_on_bgsave_error.store(on, Relaxed),
            Change::AppendOnly(on) => self.appendonly.store(on, Relaxed),
            Change::AppendFsync(policy) => self.appendfsync.store(fsync_index(policy), Relaxed),
            Change::AutoAofRewritePercentage(percent) => self.auto_aof_rewrite_percentage.store(percent, Relaxed),
            Change::AutoAofRewriteMinSize(bytes) => self.auto_aof_rewrite_min_size.store(bytes, Relaxed),
            Change::AofUseRdbPreamble(on) => self.aof_use_rdb_preamble.store(on, Relaxed),
            Change::Tuning(index, value) => self.tuning.set(index, value),
        }
    }

    pub(super) fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    /// The hash and set encoding thresholds, for the store.
    pub fn encoding_limits(&self) -> EncodingLimits {
        self.tuning.encoding_limits()
    }
}

fn set_failed(name: &[u8], reason: &str) -> String {
    let name = String::from_utf8_lossy(name);
    format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")
}

/// A parsed, not yet applied, CONFIG SET value.
pub(super) enum Change {
    MaxMemory(u64),
    MaxMemoryPolicy(MaxMemoryPolicy),
    MaxMemoryClients(MaxMemoryClients),
    MaxClients(u32),
    ClientIdleTimeoutSecs(u64),
    ClientWriteTimeoutSecs(u64),
    OutputBufferLimit(LimitUpdate),
    TcpKeepalive(u64),
    TraceSampleRatio(f64),
    /// `None` (set to "") turns authentication off, as in Redis.
    RequirePass(Option<Password>),
    Strategy(Strategy),
    Shards(u32),
    Save(SaveRules),
    RdbCompression(bool),
    RdbChecksum(bool),
    StopWritesOnBgsaveError(bool),
    AppendOnly(bool),
    AppendFsync(AppendFsync),
    AutoAofRewritePercentage(u64),
    AutoAofRewriteMinSize(u64),
    AofUseRdbPreamble(bool),
    /// Knob `.0` of [`Tuning`] becomes `.1`.
    Tuning(usize, i64),
}

fn fsync_index(policy: AppendFsync) -> u8 {
    AppendFsync::ALL.iter().position(|p| *p == policy).map_or(1, |i| i as u8)
}

/// Turns a CONFIG SET argument into a [`Change`], or gives Redis's reason for refusing it.
pub(super) type ParseValue = fn(&[u8]) -> Result<Change, String>;

/// One CONFIG parameter: its Redis name, how to show it, and how to parse a new value
/// (`None`: fixed at startup).
pub(super) struct Parameter {
    pub(super) name: &'static str,
    pub(super) get: fn(&RuntimeSettings) -> String,
    pub(super) parse: Option<ParseValue>,
}

fn all_parameters() -> impl Iterator<Item = &'static Parameter> {
    PARAMETERS.iter().chain(tuning::PARAMETERS)
}

fn lookup(name: &[u8]) -> Option<&'static Parameter> {
    all_parameters().find(|parameter| parameter.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Every parameter CONFIG knows: the runtime-mutable settings, then read-only ones that
/// clients and redis-benchmark ask for.
const PARAMETERS: &[Parameter] = &[
    Parameter {
        name: "maxmemory",
        get: |settings| settings.max_memory().to_string(),
        parse: Some(|value| {
            let bytes = std::str::from_utf8(value).ok().and_then(|text| parse_byte_size(text).ok());
            bytes.map(Change::MaxMemory).ok_or_else(|| "argument must be a memory value".to_owned())
        }),
    },
    Parameter {
        name: "maxmemory-policy",
        get: |settings| settings.max_memory_policy().name().to_owned(),
        parse: Some(|value| {
            let policy = MaxMemoryPolicy::ALL.into_iter().find(|p| p.name().as_bytes().eq_ignore_ascii_case(value));
            policy.map(Change::MaxMemoryPolicy).ok_or_else(|| {
                let names: Vec<&str> = MaxMemoryPolicy::ALL.iter().map(|p| p.name()).collect();
                format!("argument(s) must be one of the following: {}", names.join(", "))
            })
        }),
    },
    Parameter {
        name: "maxmemory-clients",
        get: |settings| settings.max_memory_clients().to_string(),
        parse: Some(|value| parsed(value, MaxMemoryClientsError::Malformed).map(Change::MaxMemoryClients)),
    },
    Parameter {
        name: "maxclients",
        get: |settings| settings.max_clients().to_string(),
        parse: Some(|value| integer_in(value, 1, u32::MAX).map(Change::MaxClients)),
    },
    Parameter {
        name: "timeout",
        get: |settings| settings.client_idle_timeout().map_or(0, |timeout| timeout.as_secs()).to_string(),
        parse: Some(|value| integer_in(value, 0, MAX_CLIENT_IDLE_TIMEOUT_SECS).map(Change::ClientIdleTimeoutSecs)),
    },
    Parameter {
        name: "client-write-timeout",
        get: |settings| settings.client_write_timeout().map_or(0, |timeout| timeout.as_secs()).to_string(),
        parse: Some(|value| integer_in(value, 0, MAX_CLIENT_IDLE_TIMEOUT_SECS).map(Change::ClientWriteTimeoutSecs)),
    },
    Parameter {
        name: "client-output-buffer-limit",
        get: |settings| settings.output_buffer_limits().to_string(),
        parse: Some(|value| parsed(value, OutputLimitError::WrongArity).map(Change::OutputBufferLimit)),
    },
    Parameter {
        name: "tcp-keepalive",
        get: |settings| settings.tcp_keepalive().map_or(0, |interval| interval.as_secs()).to_string(),
        parse: Some(|value| integer_in(value, 0, MAX_CLIENT_IDLE_TIMEOUT_SECS).map(Change::TcpKeepalive)),
    },
    Parameter {
        name: "requirepass",
        get: |settings| settings.require_pass.load().as_deref().map(|p| p.expose().to_owned()).unwrap_or_default(),
        parse: Some(|value| match std::str::from_utf8(value) {
            Ok("") => Ok(Change::RequirePass(None)),
            Ok(password) => Ok(Change::RequirePass(Some(Password::from(password.to_owned())))),
            Err(_) => Err("argument must be valid UTF-8".to_owned()),
        }),
    },
    Parameter {
        name: "trace-sample-ratio",
        get: |settings| settings.trace_sample_ratio().to_string(),
        parse: Some(|value| match parse_float(value).map(Float::value) {
            Some(ratio) if (0.0..=1.0).contains(&ratio) => Ok(Change::TraceSampleRatio(ratio)),
            Some(_) => Err("argument must be between 0 and 1 inclusive".to_owned()),
            None => Err("argument couldn't be parsed into a number".to_owned()),
        }),
    },
    Parameter {
        name: "strategy",
        get: |settings| settings.engine().strategy.name().to_owned(),
        parse: Some(|value| {
            let strategy = std::str::from_utf8(value).ok().and_then(|text| text.parse::<Strategy>().ok());
            strategy.map(Change::Strategy).ok_or_else(|| {
                let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
                format!("argument(s) must be one of the following: {}", names.join(", "))
            })
        }),
    },
    Parameter {
        name: "shards",
        get: |settings| settings.engine().shards.to_string(),
        parse: Some(|value| {
            let shards = integer_in(value, 1, MAX_SHARDS)?;
            if shards.is_power_of_two() {
                Ok(Change::Shards(shards))
            } else {
                Err(format!("argument must be a power of two between 1 and {MAX_SHARDS}"))
            }
        }),
    },
    Parameter { name: "port", get: |settings| settings.port.to_string(), parse: None },
    Parameter { name: "bind", get: |settings| settings.bind.to_string(), parse: None },
    Parameter { name: "proto-max-bulk-len", get: |settings| settings.max_bulk_len.to_string(), parse: None },
    Parameter {
        name: "save",
        get: |settings| settings.save.lock().to_string(),
        parse: Some(|value| {
            let rules = std::str::from_utf8(value).ok().and_then(|text| text.parse::<SaveRules>().ok());
            rules.map(Change::Save).ok_or_else(|| InvalidSaveRules.to_string())
        }),
    },
    Parameter {
        name: "rdbcompression",
        get: |settings| yes_no(settings.rdbcompression.load(Relaxed)),
        parse: Some(|value| yes_or_no(value).map(Change::RdbCompression)),
    },
    Parameter {
        name: "rdbchecksum",
        get: |settings| yes_no(settings.rdbchecksum.load(Relaxed)),
        parse: Some(|value| yes_or_no(value).map(Change::RdbChecksum)),
    },
    Parameter {
        name: "stop-writes-on-bgsave-error",
        get: |settings| yes_no(settings.stop_writes_on_bgsave_error()),
        parse: Some(|value| yes_or_no(value).map(Change::StopWritesOnBgsaveError)),
    },
    Parameter { name: "dir", get: |settings| absolute(&settings.persistence.dir), parse: None },
    Parameter { name: "dbfilename", get: |settings| settings.persistence.dbfilename.clone(), parse: None },
    Parameter {
        name: "rdb-skip-unsupported-types",
        get: |settings| yes_no(settings.persistence.rdb_skip_unsupported_types),
        parse: None,
    },
    Parameter {
        name: "rdb-skip-other-dbs",
        get: |settings| yes_no(settings.persistence.rdb_skip_other_dbs),
        parse: None,
    },
    Parameter {
        name: "appendonly",
        get: |settings| yes_no(settings.appendonly()),
        parse: Some(|value| yes_or_no(value).map(Change::AppendOnly)),
    },
    Parameter {
        name: "appendfsync",
        get: |settings| settings.appendfsync().name().to_owned(),
        parse: Some(|value| {
            let policy = AppendFsync::ALL.into_iter().find(|p| p.name().as_bytes().eq_ignore_ascii_case(value));
            policy
                .map(Change::AppendFsync)
                .ok_or_else(|| "argument(s) must be one of the following: always, everysec, no".to_owned())
        }),
    },
    Parameter { name: "appenddirname", get: |settings| settings.persistence.appenddirname.clone(), parse: None },
    Parameter { name: "appendfilename", get: |settings| settings.persistence.appendfilename.clone(), parse: None },
    Parameter {
        name: "auto-aof-rewrite-percentage",
        get: |settings| settings.auto_aof_rewrite_percentage.load(Relaxed).to_string(),
        parse: Some(|value| integer_in(value, 0, u64::from(u32::MAX)).map(Change::AutoAofRewritePercentage)),
    },
    Parameter {
        name: "auto-aof-rewrite-min-size",
        get: |settings| settings.auto_aof_rewrite_min_size.load(Relaxed).to_string(),
        parse: Some(|value| {
            let bytes = std::str::from_utf8(value).ok().and_then(|text| parse_byte_size(text).ok());
            bytes.map(Change::AutoAofRewriteMinSize).ok_or_else(|| "argument must be a memory value".to_owned())
        }),
    },
    Parameter {
        name: "aof-use-rdb-preamble",
        get: |settings| yes_no(settings.aof_use_rdb_preamble.load(Relaxed)),
        parse: Some(|value| yes_or_no(value).map(Change::AofUseRdbPreamble)),
    },
    // One keyspace: what clients probing for it must be told.
    Parameter { name: "databases", get: |settings| settings.databases.to_string(), parse: None },
];

/// A value in a syntax of its own (`FromStr`), refused with its parser's words, or with
/// `not_text`'s when it is not UTF-8.
fn parsed<T: FromStr>(value: &[u8], not_text: T::Err) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    let text = std::str::from_utf8(value).map_err(|_| not_text.to_string())?;
    text.parse().map_err(|error: T::Err| error.to_string())
}

fn yes_no(on: bool) -> String {
    (if on { "yes" } else { "no" }).to_owned()
}

/// Redis's boolean argument, case-insensitive, with its error text.
fn yes_or_no(value: &[u8]) -> Result<bool, String> {
    if value.eq_ignore_ascii_case(b"yes") {
        Ok(true)
    } else if value.eq_ignore_ascii_case(b"no") {
        Ok(false)
    } else {
        Err("argument must be 'yes' or 'no'".to_owned())
    }
}

/// CONFIG GET dir answers the absolute path, as Redis (which chdirs there) does.
fn absolute(dir: &std::path::Path) -> String {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned()).display().to_string()
}

/// A Redis integer (`string2ll` rules) within `min..=max`, with Redis's two error texts.
pub(super) fn integer_in<T: TryFrom<i64> + PartialOrd + fmt::Display + Copy>(
    value: &[u8],
    min: T,
    max: T,
) -> Result<T, String> {
    let number = parse_integer(value).ok_or_else(|| "argument couldn't be parsed into an integer".to_owned())?;
    T::try_from(number)
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("argument must be between {min} and {max} inclusive"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RuntimeSettings {
        RuntimeSettings::from_config(&ServerConfig::default()).unwrap()
    }

    fn get(settings: &RuntimeSettings, patterns: &[&str]) -> Vec<(String, String)> {
        let patterns: Vec<&[u8]> = patterns.iter().map(|p| p.as_bytes()).collect();
        settings.config_get(&patterns)
    }

    fn set(settings: &RuntimeSettings, pairs: &[(&str, &str)]) -> Result<(), String> {
        let pairs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
        settings.config_set(&pairs)
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())).collect()
    }

    fn set_failed_text(name: &str, reason: &str) -> String {
        format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")
    }

    #[test]
    fn starts_from_the_configuration() {
        let config = ServerConfig {
            max_memory: 1 << 20,
            max_memory_policy: MaxMemoryPolicy::AllkeysRandom,
            max_clients: 7,
            client_idle_timeout_secs: 60,
            trace_sample_ratio: 0.5,
            require_pass: Some(Password::from("s3cret".to_owned())),
            ..ServerConfig::default()
        };
        let settings = RuntimeSettings::from_config(&config).unwrap();
        assert_eq!(settings.max_memory(), 1 << 20);
        assert_eq!(settings.max_memory_policy(), MaxMemoryPolicy::AllkeysRandom);
        assert_eq!(settings.max_clients(), 7);
        assert_eq!(settings.client_idle_timeout(), Some(Duration::from_secs(60)));
        assert_eq!(settings.trace_sample_ratio(), 0.5);
        assert!(settings.auth_required());
        assert!(settings.password_matches(b"s3cret"));
        assert!(!settings.password_matches(b"s3cre") && !settings.password_matches(b"s3creT"));

        let open = self::settings();
        assert!(!open.auth_required() && !open.password_matches(b""));
        assert_eq!(open.client_idle_timeout(), None);
    }

    #[test]
    fn get_answers_what_redis_benchmark_and_clients_ask() {
        let settings = settings();
        assert_eq!(
            get(&settings, &["save", "appendonly", "databases", "port", "bind", "proto-max-bulk-len"]),
            pairs(&[
                ("save", ""),
                ("appendonly", "no"),
                ("databases", "16"),
                ("port", "6379"),
                ("bind", "::"),
                ("proto-max-bulk-len", "536870912"),
            ])
        );
        assert_eq!(
            get(&settings, &["maxmemory*", "timeout", "maxclients", "requirepass", "trace-sample-ratio"]),
            pairs(&[
                ("maxmemory", "0"),
                ("maxmemory-policy", "noeviction"),
                ("maxmemory-clients", "10%"),
                ("timeout", "0"),
                ("maxclients", "10000"),
                ("requirepass", ""),
                ("trace-sample-ratio", "0"),
            ])
        );
    }

    #[test]
    fn get_matches_case_insensitively_and_reports_each_parameter_once() {
        let settings = settings();
        // As Redis 7.0 answers: an exact name is echoed as written, globs use canonical names.
        assert_eq!(
            get(&settings, &["MAXMEMORY", "maxmem*", "maxmemory"]),
            pairs(&[("MAXMEMORY", "0"), ("maxmemory-policy", "noeviction"), ("maxmemory-clients", "10%")])
        );
        assert_eq!(
            get(&settings, &["MAXMEM*"]),
            pairs(&[("maxmemory", "0"), ("maxmemory-policy", "noeviction"), ("maxmemory-clients", "10%")])
        );
        assert_eq!(get(&settings, &["p?rt", "[b]ind"]), pairs(&[("port", "6379"), ("bind", "::")]));
        assert_eq!(get(&settings, &["nothing-matches", "\u{ff}"]), pairs(&[]));
        assert_eq!(get(&settings, &["*"]).len(), all_parameters().count());
    }

    #[test]
    fn set_changes_every_mutable_setting() {
        let settings = settings();
        set(
            &settings,
            &[
                ("maxmemory", "100mb"),
                ("MAXMEMORY-POLICY", "ALLKEYS-RANDOM"),
                ("maxclients", "50"),
                ("timeout", "300"),
                ("requirepass", "s3cret"),
                ("trace-sample-ratio", "0.25"),
                ("strategy", "lock-free"),
                ("SHARDS", "256"),
            ],
        )
        .unwrap();
        assert_eq!(settings.engine(), EngineConfig { strategy: Strategy::LockFree, shards: 256 });
        assert_eq!(get(&settings, &["strategy", "shards"]), pairs(&[("strategy", "LockFree"), ("shards", "256")]));
        assert_eq!(settings.max_memory(), 100 << 20);
        assert_eq!(settings.max_memory_policy(), MaxMemoryPolicy::AllkeysRandom);
        assert_eq!(settings.max_clients(), 50);
        assert_eq!(settings.client_idle_timeout(), Some(Duration::from_secs(300)));
        assert!(settings.password_matches(b"s3cret"));
        assert_eq!(settings.trace_sample_ratio(), 0.25);
        assert_eq!(get(&settings, &["requirepass"]), pairs(&[("requirepass", "s3cret")]));

        // A percentage follows maxmemory; none is no limit.
        assert_eq!(settings.client_memory_limit(), (100 << 20) / 10);
        set(&settings, &[("maxmemory-clients", "64mb")]).unwrap();
        assert_eq!(get(&settings, &["maxmemory-clients"]), pairs(&[("maxmemory-clients", "67108864")]));
        assert_eq!(settings.client_memory_limit(), 64 << 20);
        set(&settings, &[("maxmemory-clients", "25%"), ("maxmemory", "0")]).unwrap();
        assert_eq!(get(&settings, &["maxmemory-clients"]), pairs(&[("maxmemory-clients", "25%")]));
        assert_eq!(settings.client_memory_limit(), 0);

        // Redis units: a bare `k` is decimal, `kb` binary; an empty password turns AUTH off.
        set(&settings, &[("maxmemory", "10k"), ("requirepass", "")]).unwrap();
        assert_eq!(settings.max_memory(), 10_000);
        assert!(!settings.auth_required());
    }

    /// Every text below was checked against redis-server 7.0.15.
    #[test]
    fn set_errors_have_redis_wording() {
        let settings = settings();
        let one_of = "argument(s) must be one of the following: noeviction, allkeys-random";
        let not_integer = "argument couldn't be parsed into an integer";
        let memory_or_percent = "argument must be a memory or percent value";
        for (pairs, expected) in [
            (vec![("foo", "1")], "ERR Unknown option or number of arguments for CONFIG SET - 'foo'".to_owned()),
            (vec![("maxmemory", "abc")], set_failed_text("maxmemory", "argument must be a memory value")),
            (vec![("maxmemory", "-1")], set_failed_text("maxmemory", "argument must be a memory value")),
            (vec![("maxmemory", "1.5gb")], set_failed_text("maxmemory", "argument must be a memory value")),
            (vec![("maxmemory-policy", "allkeys-lru")], set_failed_text("maxmemory-policy", one_of)),
            (vec![("maxmemory-clients", "abc")], set_failed_text("maxmemory-clients", memory_or_percent)),
            (vec![("maxmemory-clients", "-1")], set_failed_text("maxmemory-clients", memory_or_percent)),
            (vec![("maxmemory-clients", "5.5%")], set_failed_text("maxmemory-clients", memory_or_percent)),
            (
                vec![("maxmemory-clients", "101%")],
                set_failed_text("maxmemory-clients", "percentage argument must be less or equal to 100"),
            ),
            (vec![("maxclients", "abc")], set_failed_text("maxclients", not_integer)),
            (vec![("maxclients", "0100")], set_failed_text("maxclients", not_integer)),
            (
                vec![("maxclients", "0")],
                set_failed_text("maxclients", "argument must be between 1 and 4294967295 inclusive"),
            ),
            (
                vec![("maxclients", "-5")],
                set_failed_text("maxclients", "argument must be between 1 and 4294967295 inclusive"),
            ),
            (vec![("timeout", "1.5")], set_failed_text("timeout", not_integer)),
            (vec![("timeout", "+5")], set_failed_text("timeout", not_integer)),
            (
                vec![("timeout", "2147483648")],
                set_failed_text("timeout", "argument must be between 0 and 2147483647 inclusive"),
            ),
            (vec![("databases", "3")], set_failed_text("databases", "can't set immutable config")),
            (vec![("port", "1234")], set_failed_text("port", "can't set immutable config")),
            (vec![("maxmemory", "1"), ("maxmemory", "2")], set_failed_text("maxmemory", "duplicate parameter")),
            (vec![("maxmemory", "1"), ("MAXMEMORY", "2")], set_failed_text("MAXMEMORY", "duplicate parameter")),
            // Names are all checked before any value, and the first problem wins.
            (
                vec![("maxmemory", "abc"), ("foo", "1")],
                "ERR Unknown option or number of arguments for CONFIG SET - 'foo'".to_owned(),
            ),
            (vec![("databases", "3"), ("foo", "1")], set_failed_text("databases", "can't set immutable config")),
            (
                vec![("foo", "1"), ("databases", "3")],
                "ERR Unknown option or number of arguments for CONFIG SET - 'foo'".to_owned(),
            ),
            (vec![("timeout", "abc"), ("maxmemory", "abc")], set_failed_text("timeout", not_integer)),
        ] {
            assert_eq!(set(&settings, &pairs), Err(expected), "{pairs:?}");
        }
    }

    #[test]
    fn set_errors_for_cstore_parameters() {
        let settings = settings();
        for (value, reason) in [
            ("1.5", "argument must be between 0 and 1 inclusive"),
            ("-0.1", "argument must be between 0 and 1 inclusive"),
            ("inf", "argument must be between 0 and 1 inclusive"),
            ("nan", "argument couldn't be parsed into a number"),
            ("half", "argument couldn't be parsed into a number"),
        ] {
            assert_eq!(
                set(&settings, &[("trace-sample-ratio", value)]),
                Err(set_failed_text("trace-sample-ratio", reason))
            );
        }
        let strategies = "argument(s) must be one of the following: Mutex, RwLock, LockFree, CopyOnWrite";
        assert_eq!(set(&settings, &[("strategy", "spinlock")]), Err(set_failed_text("strategy", strategies)));
        for (value, reason) in [
            ("12", "argument must be a power of two between 1 and 4096"),
            ("0", "argument must be between 1 and 4096 inclusive"),
            ("8192", "argument must be between 1 and 4096 inclusive"),
            ("sixteen", "argument couldn't be parsed into an integer"),
        ] {
            assert_eq!(set(&settings, &[("shards", value)]), Err(set_failed_text("shards", reason)));
        }
        assert_eq!(settings.engine(), EngineConfig::default(), "refused values change nothing");
        let not_utf8 = settings.config_set(&[(b"requirepass", b"\xff")]);
        assert_eq!(not_utf8, Err(set_failed_text("requirepass", "argument must be valid UTF-8")));
    }

    #[test]
    fn a_refused_set_changes_nothing() {
        let settings = settings();
        let refused = set(&settings, &[("maxmemory", "1mb"), ("maxclients", "7"), ("maxmemory-policy", "lru")]);
        assert!(refused.is_err());
        assert_eq!((settings.max_memory(), settings.max_clients()), (0, 10_000));
        assert_eq!(set(&settings, &[]), Ok(()));
    }
}
