//! The two knobs (strategy and shard count) as one validated, serializable value.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The largest shard count accepted.
pub const MAX_SHARDS: u32 = 4096;

/// How one shard is guarded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Strategy {
    /// One mutex per shard: readers and writers take turns. With one shard, the coarse lock.
    Mutex,
    /// One reader-writer lock per shard: readers share, writers are exclusive. With many
    /// shards, the classic sharded map.
    #[default]
    RwLock,
    /// A lock-free map per shard (papaya): reads never block and never wait for writers.
    LockFree,
    /// Immutable snapshots swapped atomically: reads never block; writers serialize and
    /// publish a new version (persistent maps make a write O(log n), not a full copy).
    CopyOnWrite,
}

impl Strategy {
    /// Every strategy, in a fixed order.
    pub const ALL: [Strategy; 4] = [Strategy::Mutex, Strategy::RwLock, Strategy::LockFree, Strategy::CopyOnWrite];

    /// The canonical name, as used in configuration files and the CRD.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Mutex => "Mutex",
            Strategy::RwLock => "RwLock",
            Strategy::LockFree => "LockFree",
            Strategy::CopyOnWrite => "CopyOnWrite",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = ConfigError;

    /// Accepts the canonical names case-insensitively, with or without `-`/`_`
    /// (`RwLock`, `rwlock`, `rw-lock`, `copy_on_write`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let folded: String = text.chars().filter(|c| !matches!(c, '-' | '_')).collect::<String>().to_ascii_lowercase();
        Strategy::ALL
            .into_iter()
            .find(|s| s.name().to_ascii_lowercase() == folded)
            .ok_or_else(|| ConfigError::UnknownStrategy(text.to_owned()))
    }
}

/// A configuration the engine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("shards must be a power of two between 1 and {MAX_SHARDS}, got {0}")]
    InvalidShards(u64),
    #[error("unknown strategy {0:?}: expected one of Mutex, RwLock, LockFree, CopyOnWrite")]
    UnknownStrategy(String),
    #[error("a migration is already in progress")]
    MigrationInProgress,
    #[error("max value length must be between 1 byte and {max} bytes (4 GiB - 1), got {0}", max = super::compact::MAX_STRING_LEN)]
    InvalidMaxValueLen(usize),
    #[error("databases must be between 1 and {max}, got {0}", max = super::databases::MAX_DATABASES)]
    InvalidDatabases(usize),
    #[error("DB index is out of range")]
    InvalidDatabase(usize),
}

/// The engine's knobs, as they appear in the store's configuration file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EngineConfig {
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default = "EngineConfig::default_shards")]
    pub shards: u32,
}

impl EngineConfig {
    fn default_shards() -> u32 {
        16
    }

    /// Checks the shard count: a power of two in 1..=4096.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_shards(u64::from(self.shards)).map(|_| ())
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { strategy: Strategy::default(), shards: EngineConfig::default_shards() }
    }
}

pub(crate) fn validate_shards(shards: u64) -> Result<usize, ConfigError> {
    if shards.is_power_of_two() && shards <= u64::from(MAX_SHARDS) {
        Ok(shards as usize)
    } else {
        Err(ConfigError::InvalidShards(shards))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_parse_loosely_and_print_canonically() {
        for strategy in Strategy::ALL {
            assert_eq!(strategy.name().parse::<Strategy>(), Ok(strategy));
            assert_eq!(strategy.name().to_lowercase().parse::<Strategy>(), Ok(strategy));
        }
        assert_eq!("rw-lock".parse::<Strategy>(), Ok(Strategy::RwLock));
        assert_eq!("copy_on_write".parse::<Strategy>(), Ok(Strategy::CopyOnWrite));
        let err = "spinlock".parse::<Strategy>().unwrap_err();
        assert!(err.to_string().contains("expected one of Mutex, RwLock, LockFree, CopyOnWrite"));
    }

    #[test]
    fn shard_counts_must_be_powers_of_two_up_to_4096() {
        for ok in [1, 2, 16, 256, 4096] {
            assert_eq!(validate_shards(ok), Ok(ok as usize));
        }
        for bad in [0, 3, 12, 4097, 8192, u64::MAX] {
            assert_eq!(validate_shards(bad), Err(ConfigError::InvalidShards(bad)));
        }
    }

    #[test]
    fn config_file_form_is_camel_case_with_defaults() {
        let parsed: EngineConfig = toml::from_str("strategy = \"LockFree\"").unwrap();
        assert_eq!(parsed, EngineConfig { strategy: Strategy::LockFree, shards: 16 });
        assert!(toml::from_str::<EngineConfig>("strategy = \"Spin\"").is_err());
        assert!(toml::from_str::<EngineConfig>("shard = 4").is_err(), "unknown fields are refused");
    }
}
