//! Configuration of `cstore serve`: one [`ServerConfig`] merged from embedded defaults, a
//! versioned TOML file, environment variables and flags (later sources win), and the
//! [`RuntimeSettings`] that `CONFIG SET` may change while the server runs.
//!
//! The file format is a contract with the Kubernetes operator, which renders it into a
//! ConfigMap with [`ServerConfig::to_toml_string`]; `docs/CONFIG.md` documents it and its
//! version policy, and `docs/cstore.example.toml` is parsed by a test so neither can rot.

mod args;
mod byte_size;
mod client_memory;
mod output_limits;
mod runtime;
mod tuning;

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::EngineConfig;
use crate::persistence::config::PersistenceConfig;

pub use args::ServeArgs;
pub use byte_size::{ByteSizeError, parse_byte_size};
pub use client_memory::{MIN_CLIENT_MEMORY_LIMIT, MaxMemoryClients, MaxMemoryClientsError};
pub use output_limits::{ClassLimit, LimitUpdate, OutputBufferLimits, OutputLimitError};
pub use runtime::RuntimeSettings;

/// The only file format version this build reads and writes.
pub const CONFIG_VERSION: u32 = 1;

/// Longest idle timeout accepted, in seconds: Redis's own bound for `timeout`.
pub const MAX_CLIENT_IDLE_TIMEOUT_SECS: u64 = i32::MAX as u64;

/// Everything `cstore serve` needs to start. Field names are the file's keys in camelCase.
///
/// The settings listed on [`RuntimeSettings`] may change at runtime through `CONFIG SET`:
/// once the server runs, read them from there, not from this value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerConfig {
    /// File format version; must be [`CONFIG_VERSION`].
    pub version: u32,
    /// Address the Redis and admin listeners bind to; `::` (the default) is every address,
    /// IPv6 and IPv4, or IPv4 only on a host without IPv6 (`server/bind.rs`).
    pub bind: IpAddr,
    /// Port of the Redis listener (0: the OS picks one, for tests).
    pub port: u16,
    /// Port of the admin HTTP server (0: the OS picks one, for tests).
    pub admin_port: u16,
    /// Locking strategy and shard count, as a nested `[engine]` table.
    pub engine: EngineConfig,
    /// Number of databases (Redis's `databases`): SELECT takes 0 to this minus one.
    pub databases: usize,
    /// Most simultaneous client connections.
    pub max_clients: u32,
    /// Largest bulk string a client may send, in bytes.
    #[serde(deserialize_with = "byte_size::deserialize")]
    pub max_bulk_len: u64,
    /// Largest whole request (one command with all its arguments), in bytes.
    #[serde(deserialize_with = "byte_size::deserialize")]
    pub max_request_len: u64,
    /// Most arguments in one request, the command name included.
    pub max_args: u64,
    /// Longest inline (telnet-style) command line, in bytes.
    #[serde(deserialize_with = "byte_size::deserialize")]
    pub max_inline_len: u64,
    /// Seconds a client may stay idle before it is disconnected; 0 never disconnects.
    pub client_idle_timeout_secs: u64,
    /// Seconds a client may leave its replies unread (the socket takes no byte of them) before
    /// it is disconnected; 0 never disconnects.
    pub client_write_timeout_secs: u64,
    /// Limits on a client's unread replies, in Redis's `client-output-buffer-limit` syntax.
    pub client_output_buffer_limit: OutputBufferLimits,
    /// Seconds between TCP keepalive probes on client connections (Redis's `tcp-keepalive`);
    /// 0 turns keepalive off.
    pub tcp_keepalive: u64,
    /// Memory limit for keys and values, in bytes; 0 means unlimited.
    #[serde(deserialize_with = "byte_size::deserialize")]
    pub max_memory: u64,
    /// What a write does once `max_memory` is reached.
    pub max_memory_policy: MaxMemoryPolicy,
    /// Limit on the memory of all clients together (Redis's `maxmemory-clients`): bytes, or
    /// a percentage of `max_memory`; past it the clients using the most are disconnected.
    pub max_memory_clients: MaxMemoryClients,
    /// Password clients must give with AUTH; `None` disables authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_pass: Option<Password>,
    /// File holding the password (a mounted Kubernetes Secret); exclusive with `require_pass`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_pass_file: Option<PathBuf>,
    /// Fraction of commands traced, from 0 (none) to 1 (all).
    pub trace_sample_ratio: f64,
    /// Log line format.
    pub log_format: LogFormat,
    /// Seconds connections get to finish after shutdown begins.
    pub shutdown_grace_secs: u64,
    /// Milliseconds between two passes of the active expiry sweeper.
    pub active_expire_interval_ms: u64,
    /// Snapshots: where, when, and how they are written and loaded, as a nested
    /// `[persistence]` table.
    pub persistence: PersistenceConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            version: CONFIG_VERSION,
            bind: super::bind::ALL_ADDRESSES,
            port: 6379,
            admin_port: 8080,
            engine: EngineConfig::default(),
            databases: crate::engine::DEFAULT_DATABASES,
            max_clients: 10_000,
            max_bulk_len: 512 << 20,
            max_request_len: 1 << 30,
            max_args: 1 << 20,
            max_inline_len: 64 << 10,
            client_idle_timeout_secs: 0,
            client_write_timeout_secs: 60,
            client_output_buffer_limit: OutputBufferLimits::default(),
            tcp_keepalive: 300,
            max_memory: 0,
            max_memory_policy: MaxMemoryPolicy::default(),
            max_memory_clients: MaxMemoryClients::default(),
            require_pass: None,
            require_pass_file: None,
            trace_sample_ratio: 0.0,
            log_format: LogFormat::default(),
            shutdown_grace_secs: 30,
            active_expire_interval_ms: 100,
            persistence: PersistenceConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Parses and validates a config file's text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config = Self::parse(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a config file; errors name the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let config = Self::read_unvalidated(path)?;
        config.validate().map_err(|error| error.in_file(path))?;
        Ok(config)
    }

    /// Reads and parses a config file without validating it, for callers that apply
    /// overrides first (a flag may fix a value the file got wrong).
    pub(super) fn read_unvalidated(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            what: "config file",
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|error| error.in_file(path))
    }

    /// Checks the format version before anything else, so that a file written for a newer
    /// format is refused for its version rather than for a key this build does not know.
    fn parse(text: &str) -> Result<Self, ConfigError> {
        #[derive(Deserialize)]
        struct VersionProbe {
            version: Option<toml::Value>,
        }
        match toml::from_str::<VersionProbe>(text)?.version {
            None => return Err(ConfigError::MissingVersion),
            Some(toml::Value::Integer(version)) if version == i64::from(CONFIG_VERSION) => {}
            Some(other) => return Err(ConfigError::UnsupportedVersion(other.to_string())),
        }
        Ok(toml::from_str(text)?)
    }

    /// The file form of this configuration (the operator renders ConfigMaps with it).
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        Ok(toml::to_string(self)?)
    }

    /// Refuses any value the server could not run with; the error names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.version != CONFIG_VERSION {
            return Err(ConfigError::UnsupportedVersion(self.version.to_string()));
        }
        self.engine.validate().map_err(|error| invalid("engine.shards", error.to_string()))?;
        ensure(self.port == 0 || self.port != self.admin_port, "adminPort", || {
            format!("must differ from port (both are {})", self.port)
        })?;
        ensure(self.max_clients >= 1, "maxClients", || "must be at least 1".into())?;
        ensure((1..=crate::engine::MAX_DATABASES).contains(&self.databases), "databases", || {
            format!("must be between 1 and {}, got {}", crate::engine::MAX_DATABASES, self.databases)
        })?;
        ensure(self.max_request_len >= 1, "maxRequestLen", || "must be at least 1 byte".into())?;
        for (setting, bytes) in [("maxBulkLen", self.max_bulk_len), ("maxInlineLen", self.max_inline_len)] {
            ensure(bytes >= 1, setting, || "must be at least 1 byte".into())?;
            ensure(bytes <= self.max_request_len, setting, || {
                format!("must not exceed maxRequestLen ({} bytes), got {bytes}", self.max_request_len)
            })?;
        }
        ensure(self.max_bulk_len <= crate::engine::MAX_STRING_LEN as u64, "maxBulkLen", || {
            format!(
                "must not exceed {} bytes (4 GiB - 1), the longest string the engine stores",
                crate::engine::MAX_STRING_LEN
            )
        })?;
        ensure(self.max_args >= 1, "maxArgs", || "must be at least 1".into())?;
        ensure(self.client_idle_timeout_secs <= MAX_CLIENT_IDLE_TIMEOUT_SECS, "clientIdleTimeoutSecs", || {
            format!("must be at most {MAX_CLIENT_IDLE_TIMEOUT_SECS} (0 never times out)")
        })?;
        for (setting, secs) in
            [("clientWriteTimeoutSecs", self.client_write_timeout_secs), ("tcpKeepalive", self.tcp_keepalive)]
        {
            ensure(secs <= MAX_CLIENT_IDLE_TIMEOUT_SECS, setting, || {
                format!("must be at most {MAX_CLIENT_IDLE_TIMEOUT_SECS} (0 turns it off)")
            })?;
        }
        self.check_password_source()?;
        ensure(self.require_pass.as_ref().is_none_or(|p| !p.expose().is_empty()), "requirePass", || {
            "must not be empty; leave it out to disable authentication".into()
        })?;
        ensure((0.0..=1.0).contains(&self.trace_sample_ratio), "traceSampleRatio", || {
            format!("must be between 0 and 1, got {}", self.trace_sample_ratio)
        })?;
        ensure(self.active_expire_interval_ms >= 1, "activeExpireIntervalMs", || "must be at least 1".into())?;
        self.persistence.validate().map_err(|(field, reason)| invalid(field, reason))
    }

    fn check_password_source(&self) -> Result<(), ConfigError> {
        ensure(self.require_pass.is_none() || self.require_pass_file.is_none(), "requirePass", || {
            "set either requirePass or requirePassFile, not both".into()
        })
    }

    /// The password clients must give, read from `require_pass_file` when that is set (its
    /// trailing newlines trimmed: `kubectl create secret --from-file` keeps them).
    pub fn resolve_password(&self) -> Result<Option<Password>, ConfigError> {
        self.check_password_source()?;
        let Some(path) = &self.require_pass_file else {
            return Ok(self.require_pass.clone());
        };
        let contents = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            what: "requirePassFile",
            path: path.clone(),
            source,
        })?;
        let password = contents.trim_end_matches(['\r', '\n']);
        ensure(!password.is_empty(), "requirePassFile", || format!("{} is empty", path.display()))?;
        Ok(Some(Password::from(password.to_owned())))
    }

    /// How long connections get to finish once shutdown begins.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// The pause between two active expiry passes.
    pub fn active_expire_interval(&self) -> Duration {
        Duration::from_millis(self.active_expire_interval_ms)
    }
}

fn invalid(setting: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { setting, reason }
}

fn ensure(ok: bool, setting: &'static str, reason: impl FnOnce() -> String) -> Result<(), ConfigError> {
    if ok { Ok(()) } else { Err(invalid(setting, reason())) }
}

/// What a write does when the store is at `maxmemory`. Names are Redis's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MaxMemoryPolicy {
    /// Refuse the write with `-OOM`.
    #[default]
    Noeviction,
    /// Evict random keys until the store fits again.
    AllkeysRandom,
}

impl MaxMemoryPolicy {
    /// Every policy, in declaration order (so `policy as u8` indexes it).
    pub const ALL: [MaxMemoryPolicy; 2] = [MaxMemoryPolicy::Noeviction, MaxMemoryPolicy::AllkeysRandom];

    /// The Redis name (`noeviction`, `allkeys-random`), as in the file and CONFIG GET.
    pub fn name(self) -> &'static str {
        match self {
            MaxMemoryPolicy::Noeviction => "noeviction",
            MaxMemoryPolicy::AllkeysRandom => "allkeys-random",
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A password. `Debug` prints it redacted so that configurations can be logged whole.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Password {
    fn from(password: String) -> Self {
        Password(password)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A configuration `cstore serve` refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Read { what: &'static str, path: PathBuf, source: io::Error },
    #[error("config file {}: {source}", path.display())]
    InFile { path: PathBuf, source: Box<ConfigError> },
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    #[error("the config file has no `version`: add `version = {CONFIG_VERSION}` (see docs/CONFIG.md)")]
    MissingVersion,
    #[error("unsupported config file version {0}: this cstore reads version {CONFIG_VERSION} (see docs/CONFIG.md)")]
    UnsupportedVersion(String),
    #[error("invalid {setting}: {reason}")]
    Invalid { setting: &'static str, reason: String },
    #[error("cannot write the configuration as TOML: {0}")]
    Serialize(#[from] toml::ser::Error),
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::settings::SettingsError),
}

impl ConfigError {
    fn in_file(self, path: &Path) -> ConfigError {
        ConfigError::InFile { path: path.to_owned(), source: Box::new(self) }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::engine::Strategy;

    const EXAMPLE_FILE: &str = include_str!("../../docs/cstore.example.toml");
    const CONFIG_DOC: &str = include_str!("../../docs/CONFIG.md");

    fn error_of(text: &str) -> String {
        ServerConfig::from_toml_str(text).unwrap_err().to_string()
    }

    /// Parses `version = 1` plus `settings`, expecting a validation error.
    fn invalid_setting(settings: &str) -> String {
        error_of(&format!("version = 1\n{settings}"))
    }

    /// Every key of a config file with every optional setting present, dotted for tables.
    fn keys_of(text: &str) -> BTreeSet<String> {
        let table: toml::Table = toml::from_str(text).unwrap();
        table
            .iter()
            .flat_map(|(key, value)| match value {
                toml::Value::Table(inner) => inner.keys().map(|k| format!("{key}.{k}")).collect(),
                _ => vec![key.clone()],
            })
            .collect()
    }

    fn every_setting() -> BTreeSet<String> {
        let config = ServerConfig {
            require_pass: Some(Password::from("x".to_owned())),
            require_pass_file: Some("/x".into()),
            ..ServerConfig::default()
        };
        keys_of(&config.to_toml_string().unwrap())
    }

    #[test]
    fn defaults_are_valid_and_match_the_issue() {
        let config = ServerConfig::default();
        config.validate().unwrap();
        assert_eq!(ServerConfig::from_toml_str("version = 1").unwrap(), config);
        assert_eq!((config.port, config.admin_port, config.engine.shards), (6379, 8080, 16));
        assert_eq!(config.engine.strategy, Strategy::RwLock);
        assert_eq!((config.max_bulk_len, config.max_request_len), (512 * 1024 * 1024, 1024 * 1024 * 1024));
        assert_eq!(config.resolve_password().unwrap(), None);
    }

    #[test]
    fn every_setting_round_trips_through_the_file_form() {
        let config = ServerConfig {
            version: 1,
            bind: "::1".parse().unwrap(),
            port: 7000,
            admin_port: 9090,
            databases: 32,
            engine: EngineConfig { strategy: Strategy::CopyOnWrite, shards: 64 },
            max_clients: 5,
            max_bulk_len: 1 << 20,
            max_request_len: 2 << 20,
            max_args: 100,
            max_inline_len: 4096,
            client_idle_timeout_secs: 300,
            client_write_timeout_secs: 15,
            client_output_buffer_limit: "normal 64mb 16mb 30".parse().unwrap(),
            tcp_keepalive: 60,
            max_memory: 100 << 20,
            max_memory_policy: MaxMemoryPolicy::AllkeysRandom,
            max_memory_clients: MaxMemoryClients::Bytes(64 << 20),
            require_pass: None,
            require_pass_file: Some("/var/run/secrets/cstore/password".into()),
            trace_sample_ratio: 0.25,
            log_format: LogFormat::Json,
            shutdown_grace_secs: 5,
            active_expire_interval_ms: 250,
            persistence: PersistenceConfig {
                dir: "/data".into(),
                dbfilename: "store.rdb".into(),
                save: "900 1 60 1000".parse().unwrap(),
                rdbcompression: false,
                rdbchecksum: false,
                stop_writes_on_bgsave_error: false,
                rdb_skip_unsupported_types: true,
                rdb_skip_other_dbs: true,
                appendonly: true,
                appendfsync: crate::persistence::config::AppendFsync::Always,
                appenddirname: "aof".into(),
                appendfilename: "store.aof".into(),
                auto_aof_rewrite_percentage: 50,
                auto_aof_rewrite_min_size: 1 << 20,
                aof_use_rdb_preamble: false,
            },
        };
        let text = config.to_toml_string().unwrap();
        assert!(text.contains("[engine]\nstrategy = \"CopyOnWrite\"\nshards = 64"), "{text}");
        assert_eq!(ServerConfig::from_toml_str(&text).unwrap(), config);

        let with_password =
            ServerConfig { require_pass: Some(Password::from("s3cret".to_owned())), require_pass_file: None, ..config };
        let text = with_password.to_toml_string().unwrap();
        assert_eq!(ServerConfig::from_toml_str(&text).unwrap(), with_password);
    }

    #[test]
    fn the_example_file_is_valid_and_sets_every_setting() {
        let example = ServerConfig::from_toml_str(EXAMPLE_FILE).unwrap();
        assert_eq!(example.max_memory, 2 << 30, "the example shows a unit string");
        let mut expected = every_setting();
        expected.remove("requirePass"); // exclusive with requirePassFile, which the example uses
        assert_eq!(keys_of(EXAMPLE_FILE), expected);
    }

    #[test]
    fn the_documentation_describes_every_setting() {
        for key in every_setting() {
            assert!(CONFIG_DOC.contains(&format!("`{key}`")), "docs/CONFIG.md does not describe `{key}`");
        }
    }

    #[test]
    fn byte_counts_accept_integers_and_unit_strings() {
        let config = ServerConfig::from_toml_str(
            "version = 1\nmaxMemory = \"100mb\"\nmaxBulkLen = 1048576\nmaxRequestLen = \"2GiB\"\nmaxInlineLen = \"512kb\"",
        )
        .unwrap();
        assert_eq!(
            (config.max_memory, config.max_bulk_len, config.max_request_len, config.max_inline_len),
            (100 << 20, 1 << 20, 2 << 30, 512 << 10)
        );
    }

    #[test]
    fn version_is_required_and_checked_first() {
        assert_eq!(error_of("port = 1"), "the config file has no `version`: add `version = 1` (see docs/CONFIG.md)");
        let future = "version = 2\nsomeNewSetting = true";
        assert_eq!(
            error_of(future),
            "unsupported config file version 2: this cstore reads version 1 (see docs/CONFIG.md)"
        );
        assert!(error_of("version = \"1\"").starts_with("unsupported config file version \"1\""));
        let config = ServerConfig { version: 3, ..ServerConfig::default() };
        assert!(config.validate().unwrap_err().to_string().starts_with("unsupported config file version 3"));
    }

    #[test]
    fn wrong_types_and_unknown_keys_point_at_the_line() {
        for (settings, expected) in [
            ("port = \"6379\"", "port = \"6379\""),
            ("port = 70000", "port = 70000"),
            ("bind = \"localhost\"", "bind = \"localhost\""),
            ("maxMemory = \"lots\"", "\"lots\" is not a byte count"),
            ("maxMemory = -1", "a byte count cannot be negative, got -1"),
            ("maxMemoryPolicy = \"allkeys-lru\"", "maxMemoryPolicy = \"allkeys-lru\""),
            ("maxMemoryClients = \"200%\"", "percentage argument must be less or equal to 100"),
            ("logFormat = \"xml\"", "logFormat = \"xml\""),
            ("[engine]\nstrategy = \"Spin\"", "strategy = \"Spin\""),
            ("[persistence]\nsave = \"3600\"", "Invalid save parameters"),
            ("maxclients = 10", "unknown field `maxclients`"),
            ("port = ", "port = "),
        ] {
            let message = invalid_setting(settings);
            assert!(message.contains(expected), "{settings:?} gave {message}");
            let line = format!("line {}", settings.lines().count() + 1);
            assert!(message.contains(&line), "{settings:?} gave {message}");
        }
    }

    #[test]
    fn every_invalid_value_names_its_setting() {
        for (settings, expected) in [
            (
                "[engine]\nshards = 12",
                "invalid engine.shards: shards must be a power of two between 1 and 4096, got 12",
            ),
            ("adminPort = 6379", "invalid adminPort: must differ from port (both are 6379)"),
            ("maxClients = 0", "invalid maxClients: must be at least 1"),
            ("databases = 0", "invalid databases: must be between 1 and 4096, got 0"),
            ("databases = 4097", "invalid databases: must be between 1 and 4096, got 4097"),
            ("maxRequestLen = 0", "invalid maxRequestLen: must be at least 1 byte"),
            ("maxBulkLen = 0", "invalid maxBulkLen: must be at least 1 byte"),
            (
                "maxBulkLen = \"2gb\"",
                "invalid maxBulkLen: must not exceed maxRequestLen (1073741824 bytes), got 2147483648",
            ),
            (
                "maxBulkLen = \"4gb\"\nmaxRequestLen = \"8gb\"",
                "invalid maxBulkLen: must not exceed 4294967295 bytes (4 GiB - 1), the longest string the engine stores",
            ),
            ("maxInlineLen = 0", "invalid maxInlineLen: must be at least 1 byte"),
            (
                "maxInlineLen = 2048\nmaxRequestLen = 1024\nmaxBulkLen = 1024",
                "invalid maxInlineLen: must not exceed maxRequestLen (1024 bytes), got 2048",
            ),
            ("maxArgs = 0", "invalid maxArgs: must be at least 1"),
            (
                "clientIdleTimeoutSecs = 2147483648",
                "invalid clientIdleTimeoutSecs: must be at most 2147483647 (0 never times out)",
            ),
            ("requirePass = \"\"", "invalid requirePass: must not be empty; leave it out to disable authentication"),
            (
                "requirePass = \"a\"\nrequirePassFile = \"/b\"",
                "invalid requirePass: set either requirePass or requirePassFile, not both",
            ),
            ("traceSampleRatio = 1.5", "invalid traceSampleRatio: must be between 0 and 1, got 1.5"),
            ("traceSampleRatio = -0.1", "invalid traceSampleRatio: must be between 0 and 1, got -0.1"),
            ("traceSampleRatio = nan", "invalid traceSampleRatio: must be between 0 and 1, got NaN"),
            ("activeExpireIntervalMs = 0", "invalid activeExpireIntervalMs: must be at least 1"),
            (
                "[persistence]\ndbfilename = \"data/dump.rdb\"",
                "invalid persistence.dbfilename: dbfilename can't be a path, just a filename, got \"data/dump.rdb\"",
            ),
        ] {
            assert_eq!(invalid_setting(settings), expected, "{settings:?}");
        }
    }

    #[test]
    fn ports_may_both_be_zero_for_tests() {
        ServerConfig::from_toml_str("version = 1\nport = 0\nadminPort = 0").unwrap();
    }

    #[test]
    fn load_names_the_file_in_every_error() {
        let dir = TempDir::new("load");
        let missing = dir.path.join("missing.toml");
        let message = ServerConfig::load(&missing).unwrap_err().to_string();
        assert!(message.starts_with(&format!("cannot read config file {}: ", missing.display())), "{message}");

        let file = dir.write("bad.toml", "version = 1\nmaxClients = 0\n");
        let message = ServerConfig::load(&file).unwrap_err().to_string();
        assert_eq!(message, format!("config file {}: invalid maxClients: must be at least 1", file.display()));

        let file = dir.write("good.toml", "version = 1\nport = 7001\n");
        assert_eq!(ServerConfig::load(&file).unwrap().port, 7001);
    }

    #[test]
    fn password_file_is_read_and_trimmed() {
        let dir = TempDir::new("password");
        let file = dir.write("password", "s3cret \r\n\n");
        let config = ServerConfig { require_pass_file: Some(file), ..ServerConfig::default() };
        assert_eq!(config.resolve_password().unwrap().unwrap().expose(), "s3cret ");

        let empty = dir.write("empty", "\n");
        let config = ServerConfig { require_pass_file: Some(empty.clone()), ..ServerConfig::default() };
        let message = config.resolve_password().unwrap_err().to_string();
        assert_eq!(message, format!("invalid requirePassFile: {} is empty", empty.display()));

        let missing = dir.path.join("missing");
        let config = ServerConfig { require_pass_file: Some(missing.clone()), ..ServerConfig::default() };
        let message = config.resolve_password().unwrap_err().to_string();
        assert!(message.starts_with(&format!("cannot read requirePassFile {}: ", missing.display())), "{message}");
    }

    #[test]
    fn passwords_never_show_in_debug_output() {
        let config =
            ServerConfig { require_pass: Some(Password::from("s3cret".to_owned())), ..ServerConfig::default() };
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret") && printed.contains("Password(<redacted>)"), "{printed}");
    }

    #[test]
    fn policy_names_agree_between_redis_file_and_flags() {
        use clap::ValueEnum;
        for policy in MaxMemoryPolicy::ALL {
            let in_file: MaxMemoryPolicy = toml::Value::String(policy.name().into()).try_into().unwrap();
            assert_eq!(in_file, policy);
            assert_eq!(policy.to_possible_value().unwrap().get_name(), policy.name());
        }
        assert_eq!(MaxMemoryPolicy::value_variants(), MaxMemoryPolicy::ALL);
    }

    /// A directory under the system temp dir, removed on drop.
    pub(super) struct TempDir {
        pub(super) path: PathBuf,
    }

    impl TempDir {
        pub(super) fn new(name: &str) -> Self {
            let path = std::env::temp_dir().join(format!("cstore-config-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            TempDir { path }
        }

        pub(super) fn write(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.path.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
