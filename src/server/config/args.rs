//! The command line of `cstore serve`: one optional flag per setting, each with an
//! environment variable, layered over the config file.

use std::net::IpAddr;
use std::path::PathBuf;

use super::byte_size::parse_byte_size;
use super::{ConfigError, LimitUpdate, LogFormat, MaxMemoryClients, MaxMemoryPolicy, Password, ServerConfig};
use crate::engine::Strategy;
use crate::persistence::config::AppendFsync;
use crate::persistence::rules::SaveRules;
use crate::telemetry::{OtlpArgs, Sampling};

/// Flags of `cstore serve`. Every flag is optional and also read from the environment
/// variable shown; given either way it overrides the config file, which overrides the
/// built-in defaults. docs/CONFIG.md describes every setting.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML config file (format: docs/CONFIG.md); flags and environment variables override it
    /// [default: none, built-in defaults]
    #[arg(long, env = "CSTORE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// IP address the Redis and admin listeners bind to; :: is every IPv6 and IPv4 address
    /// (IPv4 only on a host without IPv6) [default: ::]
    #[arg(long, env = "CSTORE_BIND", value_name = "IP")]
    pub bind: Option<IpAddr>,

    /// TCP port of the Redis listener; 0 lets the OS pick one [default: 6379]
    #[arg(long, env = "CSTORE_PORT")]
    pub port: Option<u16>,

    /// TCP port of the admin HTTP server (/healthz, /readyz, /metrics) [default: 8080]
    #[arg(long, env = "CSTORE_ADMIN_PORT", value_name = "PORT")]
    pub admin_port: Option<u16>,

    /// How each shard is guarded: Mutex, RwLock, LockFree or CopyOnWrite [default: RwLock]
    #[arg(long, env = "CSTORE_STRATEGY")]
    pub strategy: Option<Strategy>,

    /// Number of shards the key space is split into, a power of two from 1 to 4096 [default: 16]
    #[arg(long, env = "CSTORE_SHARDS", value_name = "COUNT")]
    pub shards: Option<u32>,

    /// Number of databases; SELECT takes 0 to this minus one [default: 16]
    #[arg(long, env = "CSTORE_DATABASES", value_name = "COUNT")]
    pub databases: Option<usize>,

    /// Most simultaneous client connections; more are refused with an error [default: 10000]
    #[arg(long, env = "CSTORE_MAXCLIENTS", value_name = "COUNT")]
    pub maxclients: Option<u32>,

    /// Largest bulk string (one argument or value) a client may send, in bytes or with a unit
    /// such as 64mb [default: 512mb]
    #[arg(long, env = "CSTORE_MAX_BULK_LEN", value_name = "BYTES", value_parser = parse_byte_size)]
    pub max_bulk_len: Option<u64>,

    /// Largest whole request (a command with all its arguments), in bytes or with a unit
    /// [default: 1gb]
    #[arg(long, env = "CSTORE_MAX_REQUEST_LEN", value_name = "BYTES", value_parser = parse_byte_size)]
    pub max_request_len: Option<u64>,

    /// Most arguments in one request, the command name included [default: 1048576]
    #[arg(long, env = "CSTORE_MAX_ARGS", value_name = "COUNT")]
    pub max_args: Option<u64>,

    /// Longest inline (telnet-style) command line, in bytes or with a unit [default: 64kb]
    #[arg(long, env = "CSTORE_MAX_INLINE_LEN", value_name = "BYTES", value_parser = parse_byte_size)]
    pub max_inline_len: Option<u64>,

    /// Seconds a client may stay idle before it is disconnected; 0 never disconnects
    /// (CONFIG SET timeout changes it at runtime) [default: 0]
    #[arg(long, env = "CSTORE_CLIENT_IDLE_TIMEOUT_SECS", value_name = "SECONDS")]
    pub client_idle_timeout_secs: Option<u64>,

    /// Seconds a client may leave its replies unread (its socket takes none of them) before
    /// it is disconnected; 0 never disconnects (CONFIG SET client-write-timeout) [default: 60]
    #[arg(long, env = "CSTORE_CLIENT_WRITE_TIMEOUT_SECS", value_name = "SECONDS")]
    pub client_write_timeout_secs: Option<u64>,

    /// Limits on a client's unread replies, as Redis writes them: "normal <hard> <soft>
    /// <seconds>"; a client reaching the hard limit, or above the soft one for longer than the
    /// seconds, is disconnected; 0 disables a limit; classes not named keep the file's limits
    /// [default: normal 256mb 64mb 60]
    #[arg(long, env = "CSTORE_CLIENT_OUTPUT_BUFFER_LIMIT", value_name = "LIMITS", value_parser = parse_output_limits)]
    pub client_output_buffer_limit: Option<LimitUpdate>,

    /// Seconds between TCP keepalive probes on client connections, so that dead peers free
    /// their slot; 0 turns keepalive off [default: 300]
    #[arg(long, env = "CSTORE_TCP_KEEPALIVE", value_name = "SECONDS")]
    pub tcp_keepalive: Option<u64>,

    /// Memory limit for keys and values, in bytes or with a unit (100mb, 1gb, 2GiB); 0 means
    /// unlimited [default: 0]
    #[arg(long, env = "CSTORE_MAXMEMORY", value_name = "BYTES", value_parser = parse_byte_size)]
    pub maxmemory: Option<u64>,

    /// What a write does at the memory limit: refuse it with -OOM, or evict random keys
    /// [default: noeviction]
    #[arg(long, env = "CSTORE_MAXMEMORY_POLICY", value_name = "POLICY")]
    pub maxmemory_policy: Option<MaxMemoryPolicy>,

    /// Memory all clients together may use (buffers plus a fixed cost each, CLIENT LIST's
    /// tot-mem), in bytes with a unit (64mb) or as a percentage of --maxmemory (10%); past it
    /// the clients using the most are disconnected; 0, or a percentage while maxmemory is 0,
    /// means no limit [default: 10%]
    #[arg(long, env = "CSTORE_MAXMEMORY_CLIENTS", value_name = "BYTES|PERCENT", value_parser = parse_max_memory_clients)]
    pub maxmemory_clients: Option<MaxMemoryClients>,

    /// Password clients must give with AUTH. Prefer --requirepass-file: a password given here
    /// can be read from the process list [default: none, no authentication]
    #[arg(
        long,
        env = "CSTORE_REQUIREPASS",
        hide_env_values = true,
        value_name = "PASSWORD",
        conflicts_with = "requirepass_file"
    )]
    pub requirepass: Option<Password>,

    /// File holding the password clients must give with AUTH, such as a mounted Kubernetes
    /// Secret; trailing newlines are ignored [default: none, no authentication]
    #[arg(long, env = "CSTORE_REQUIREPASS_FILE", value_name = "FILE")]
    pub requirepass_file: Option<PathBuf>,

    /// Fraction of commands traced, from 0 (none) to 1 (every command) [default: 0]
    #[arg(long, env = "CSTORE_TRACE_SAMPLE_RATIO", value_name = "RATIO")]
    pub trace_sample_ratio: Option<f64>,

    /// Log line format [default: text]
    #[arg(long, env = "CSTORE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Seconds connections get to finish their commands once shutdown begins [default: 30]
    #[arg(long, env = "CSTORE_SHUTDOWN_GRACE_SECS", value_name = "SECONDS")]
    pub shutdown_grace_secs: Option<u64>,

    /// Milliseconds between two passes of the active expiry sweeper [default: 100]
    #[arg(long, env = "CSTORE_ACTIVE_EXPIRE_INTERVAL_MS", value_name = "MILLISECONDS")]
    pub active_expire_interval_ms: Option<u64>,

    /// Directory of the snapshot file and its temporary file [default: .]
    #[arg(long, env = "CSTORE_DIR", value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Snapshot file name in --dir, loaded at startup if it exists [default: dump.rdb]
    #[arg(long, env = "CSTORE_DBFILENAME", value_name = "NAME")]
    pub dbfilename: Option<String>,

    /// Automatic snapshot rules as Redis writes them, "seconds changes" pairs such as
    /// "3600 1 300 100 60 10000"; "" saves only on SAVE/BGSAVE [default: none, no automatic saves]
    #[arg(long, env = "CSTORE_SAVE", value_name = "RULES")]
    pub save: Option<SaveRules>,

    /// Compress long strings in snapshots with LZF: yes or no [default: yes]
    #[arg(long, env = "CSTORE_RDBCOMPRESSION", value_name = "YES|NO", value_parser = parse_yes_no)]
    pub rdbcompression: Option<bool>,

    /// Write and verify the snapshot's CRC-64 checksum: yes or no [default: yes]
    #[arg(long, env = "CSTORE_RDBCHECKSUM", value_name = "YES|NO", value_parser = parse_yes_no)]
    pub rdbchecksum: Option<bool>,

    /// After a failed save, refuse writes with -MISCONF until a save succeeds (while save rules
    /// are set): yes or no [default: yes]
    #[arg(long, env = "CSTORE_STOP_WRITES_ON_BGSAVE_ERROR", value_name = "YES|NO", value_parser = parse_yes_no)]
    pub stop_writes_on_bgsave_error: Option<bool>,

    /// At startup, skip keys of types cstore does not hold (hash, list, ...) in the snapshot,
    /// with a warning, instead of refusing to start: yes or no [default: no]
    #[arg(long, env = "CSTORE_RDB_SKIP_UNSUPPORTED_TYPES", value_name = "YES|NO", value_parser = parse_yes_no)]
    pub rdb_skip_unsupported_types: Option<bool>,

    /// At startup, skip keys of databases beyond --databases in the snapshot instead of
    /// refusing to start: yes or no [default: no]
    #[arg(long, env = "CSTORE_RDB_SKIP_OTHER_DBS", value_name = "YES|NO", value_parser = parse_yes_no)]
    pub rdb_skip_other_dbs: Option<bool>,

    /// Log every write to the append-only file and load it at startup: yes or no [default: no]
    #[arg(long, env = "CSTORE_APPENDONLY", value_name = "YES|NO", value_parser = parse_yes_no)]
    pub appendonly: Option<bool>,

    /// When the append-only file is fsynced: always (before each reply, batched), everysec or
    /// no [default: everysec]
    #[arg(long, env = "CSTORE_APPENDFSYNC", value_name = "POLICY")]
    pub appendfsync: Option<AppendFsync>,

    /// The append-only file's directory inside --dir [default: appendonlydir]
    #[arg(long, env = "CSTORE_APPENDDIRNAME", value_name = "NAME")]
    pub appenddirname: Option<String>,

    /// The prefix of the append-only file's names [default: appendonly.aof]
    #[arg(long, env = "CSTORE_APPENDFILENAME", value_name = "NAME")]
    pub appendfilename: Option<String>,

    /// Rewrite the append-only file when it grew by this percentage since the last rewrite;
    /// 0 never [default: 100]
    #[arg(long, env = "CSTORE_AUTO_AOF_REWRITE_PERCENTAGE", value_name = "PERCENT")]
    pub auto_aof_rewrite_percentage: Option<u64>,

    /// ... once it is at least this large: bytes, or with a unit (64mb) [default: 64mb]
    #[arg(long, env = "CSTORE_AUTO_AOF_REWRITE_MIN_SIZE", value_name = "SIZE", value_parser = parse_byte_size)]
    pub auto_aof_rewrite_min_size: Option<u64>,

    /// The append-only file's base is an RDB file rather than commands: yes or no [default: yes]
    #[arg(long, env = "CSTORE_AOF_USE_RDB_PREAMBLE", value_name = "YES|NO", value_parser = parse_yes_no)]
    pub aof_use_rdb_preamble: Option<bool>,

    #[command(flatten)]
    pub otlp: OtlpArgs,
}

fn parse_max_memory_clients(text: &str) -> Result<MaxMemoryClients, String> {
    text.parse().map_err(|error: super::MaxMemoryClientsError| error.to_string())
}

fn parse_output_limits(text: &str) -> Result<LimitUpdate, String> {
    text.parse().map_err(|error: super::OutputLimitError| error.to_string())
}

/// Redis's boolean values.
fn parse_yes_no(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("must be yes or no".to_owned()),
    }
}

impl ServeArgs {
    /// The configuration to serve with: defaults, then the config file, then environment
    /// variables and flags; validated as a whole.
    pub fn resolve(&self) -> Result<ServerConfig, ConfigError> {
        let mut config = match &self.config {
            Some(path) => ServerConfig::read_unvalidated(path)?,
            None => ServerConfig::default(),
        };
        override_with(&mut config.bind, self.bind);
        override_with(&mut config.port, self.port);
        override_with(&mut config.admin_port, self.admin_port);
        override_with(&mut config.engine.strategy, self.strategy);
        override_with(&mut config.engine.shards, self.shards);
        override_with(&mut config.databases, self.databases);
        override_with(&mut config.max_clients, self.maxclients);
        override_with(&mut config.max_bulk_len, self.max_bulk_len);
        override_with(&mut config.max_request_len, self.max_request_len);
        override_with(&mut config.max_args, self.max_args);
        override_with(&mut config.max_inline_len, self.max_inline_len);
        override_with(&mut config.client_idle_timeout_secs, self.client_idle_timeout_secs);
        override_with(&mut config.client_write_timeout_secs, self.client_write_timeout_secs);
        if let Some(update) = &self.client_output_buffer_limit {
            config.client_output_buffer_limit = config.client_output_buffer_limit.updated(update);
        }
        override_with(&mut config.tcp_keepalive, self.tcp_keepalive);
        override_with(&mut config.max_memory, self.maxmemory);
        override_with(&mut config.max_memory_policy, self.maxmemory_policy);
        override_with(&mut config.max_memory_clients, self.maxmemory_clients);
        // OTEL_TRACES_SAMPLER is the standard way to say how much to trace; traceSampleRatio,
        // the store's own name for it, wins when given as a flag.
        if self.otlp.sampler.is_some() {
            let unchanged = Sampling { ratio: config.trace_sample_ratio, parent_based: false };
            config.trace_sample_ratio = self.otlp.sampling(unchanged)?.ratio;
        }
        override_with(&mut config.trace_sample_ratio, self.trace_sample_ratio);
        override_with(&mut config.log_format, self.log_format);
        override_with(&mut config.shutdown_grace_secs, self.shutdown_grace_secs);
        override_with(&mut config.active_expire_interval_ms, self.active_expire_interval_ms);
        let persistence = &mut config.persistence;
        override_with(&mut persistence.dir, self.dir.clone());
        override_with(&mut persistence.dbfilename, self.dbfilename.clone());
        override_with(&mut persistence.save, self.save.clone());
        override_with(&mut persistence.rdbcompression, self.rdbcompression);
        override_with(&mut persistence.rdbchecksum, self.rdbchecksum);
        override_with(&mut persistence.stop_writes_on_bgsave_error, self.stop_writes_on_bgsave_error);
        override_with(&mut persistence.rdb_skip_unsupported_types, self.rdb_skip_unsupported_types);
        override_with(&mut persistence.rdb_skip_other_dbs, self.rdb_skip_other_dbs);
        override_with(&mut persistence.appendonly, self.appendonly);
        override_with(&mut persistence.appendfsync, self.appendfsync);
        override_with(&mut persistence.appenddirname, self.appenddirname.clone());
        override_with(&mut persistence.appendfilename, self.appendfilename.clone());
        override_with(&mut persistence.auto_aof_rewrite_percentage, self.auto_aof_rewrite_percentage);
        override_with(&mut persistence.auto_aof_rewrite_min_size, self.auto_aof_rewrite_min_size);
        override_with(&mut persistence.aof_use_rdb_preamble, self.aof_use_rdb_preamble);
        // The two password sources are exclusive: one given here replaces either from the file.
        if let Some(password) = &self.requirepass {
            config.require_pass = Some(password.clone());
            config.require_pass_file = None;
        }
        if let Some(path) = &self.requirepass_file {
            config.require_pass_file = Some(path.clone());
            config.require_pass = None;
        }
        config.validate()?;
        Ok(config)
    }
}

fn override_with<T>(setting: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *setting = value;
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::server::config::tests::TempDir;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn resolve(args: &[&str]) -> Result<ServerConfig, ConfigError> {
        let cli = Cli::try_parse_from(std::iter::once("cstore").chain(args.iter().copied())).unwrap();
        cli.serve.resolve()
    }

    /// The `[default: X]` a flag's help promises, if any.
    fn documented_default(help: &str) -> Option<&str> {
        let start = help.find("[default: ")? + "[default: ".len();
        let value = &help[start..start + help[start..].find(']')?];
        Some(value.split(',').next().unwrap_or(value))
    }

    #[test]
    fn no_arguments_give_the_defaults() {
        assert_eq!(resolve(&[]).unwrap(), ServerConfig::default());
    }

    #[test]
    fn every_flag_has_help_with_its_default_and_a_matching_env_var() {
        let command = Cli::command();
        for arg in command.get_arguments().filter(|arg| arg.get_long().is_some()) {
            let long = arg.get_long().unwrap_or_default();
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            let default = documented_default(&help).unwrap_or_else(|| panic!("--{long} help has no [default: ...]"));
            let env = arg.get_env().and_then(|env| env.to_str()).unwrap_or_default();
            // OpenTelemetry's flags read the variables its specification names.
            if !env.starts_with("OTEL_") {
                assert_eq!(env, format!("CSTORE_{}", long.to_uppercase().replace('-', "_")), "--{long}");
            }
            if default != "none" {
                // Passing the documented default explicitly must change nothing.
                let flag = format!("--{long}");
                assert_eq!(resolve(&[&flag, default]).unwrap(), ServerConfig::default(), "--{long} {default}");
            }
        }
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let dir = TempDir::new("args-precedence");
        let file = dir.write("cstore.toml", "version = 1\nport = 7000\nadminPort = 9000\n[engine]\nshards = 4\n");
        let path = file.to_str().unwrap();
        let config = resolve(&["--config", path, "--port", "7001", "--maxmemory", "1gb"]).unwrap();
        assert_eq!((config.port, config.admin_port, config.engine.shards), (7001, 9000, 4));
        assert_eq!(config.max_memory, 1 << 30);
        assert_eq!(config.engine.strategy, Strategy::RwLock);
    }

    #[test]
    fn a_flag_may_repair_a_file_value_and_the_merged_result_is_validated() {
        let dir = TempDir::new("args-validate");
        let file = dir.write("cstore.toml", "version = 1\nport = 8080\n");
        let path = file.to_str().unwrap();
        assert_eq!(
            resolve(&["--config", path]).unwrap_err().to_string(),
            "invalid adminPort: must differ from port (both are 8080)"
        );
        assert_eq!(resolve(&["--config", path, "--admin-port", "9090"]).unwrap().port, 8080);
        assert_eq!(resolve(&["--shards", "3"]).unwrap_err().to_string(), {
            "invalid engine.shards: shards must be a power of two between 1 and 4096, got 3"
        });
    }

    #[test]
    fn a_password_flag_replaces_the_file_password_source() {
        let dir = TempDir::new("args-password");
        let secret = dir.write("password", "from-secret\n");
        let file = dir.write("cstore.toml", "version = 1\nrequirePass = \"from-file\"\n");
        let config =
            resolve(&["--config", file.to_str().unwrap(), "--requirepass-file", secret.to_str().unwrap()]).unwrap();
        assert_eq!(config.require_pass, None);
        assert_eq!(config.resolve_password().unwrap().unwrap().expose(), "from-secret");
        assert!(Cli::try_parse_from(["cstore", "--requirepass", "a", "--requirepass-file", "/b"]).is_err());
    }

    #[test]
    fn malformed_flag_values_are_refused_by_name() {
        for (flag, value) in [
            ("--maxmemory", "lots"),
            ("--strategy", "Spin"),
            ("--maxmemory-policy", "allkeys-lru"),
            ("--maxmemory-clients", "101%"),
            ("--port", "70000"),
            ("--bind", "localhost"),
        ] {
            let error = Cli::try_parse_from(["cstore", flag, value]).err().unwrap().to_string();
            assert!(error.contains(flag) && error.contains(value), "{flag} {value}: {error}");
        }
        let error = Cli::try_parse_from(["cstore", "--maxmemory", "lots"]).err().unwrap().to_string();
        assert!(error.contains("one of b, k, kb, kib, m, mb, mib, g, gb, gib"), "{error}");
    }
}
