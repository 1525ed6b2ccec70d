//! `client-output-buffer-limit`, in Redis's syntax: `<class> <hard> <soft> <soft seconds>`
//! repeated for any of the classes `normal`, `replica` (or `slave`) and `pubsub`.
//!
//! cstore has only normal clients, so only the `normal` class is enforced; the other two are
//! kept and shown by CONFIG GET so that tools that read and write the whole value work.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::byte_size::parse_byte_size;

/// One class's limits: a client whose pending output reaches `hard` bytes is closed at once;
/// one that stays at or above `soft` bytes for more than `soft_seconds` is closed then. 0
/// disables either limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: u64,
}

impl ClassLimit {
    /// How long the soft limit may be exceeded.
    pub fn soft_duration(&self) -> Duration {
        Duration::from_secs(self.soft_seconds)
    }
}

/// The limits of every client class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputBufferLimits {
    pub normal: ClassLimit,
    pub replica: ClassLimit,
    pub pubsub: ClassLimit,
}

impl Default for OutputBufferLimits {
    /// Redis's defaults for `replica` and `pubsub`; for `normal`, where Redis sets no limit at
    /// all (`0 0 0`, which lets one client's unread replies take the whole machine), the limits
    /// Redis gives replicas, the class it already expects to receive bulk transfers: 256 MiB
    /// hard, 64 MiB for 60 seconds soft. A client that reads its replies stays far below them
    /// (cstore writes replies as they are produced and stops executing a client's pipeline
    /// while 256 KiB of its output wait), except for a single reply larger than 256 MiB.
    fn default() -> Self {
        let bulk = ClassLimit { hard: 256 << 20, soft: 64 << 20, soft_seconds: 60 };
        OutputBufferLimits {
            normal: bulk,
            replica: bulk,
            pubsub: ClassLimit { hard: 32 << 20, soft: 8 << 20, soft_seconds: 60 },
        }
    }
}

/// Why a `client-output-buffer-limit` value was refused, in Redis's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputLimitError {
    #[error("Wrong number of arguments in buffer limit configuration.")]
    WrongArity,
    #[error("Invalid client class specified in buffer limit configuration.")]
    InvalidClass,
    #[error("Error in hard, soft or soft_seconds setting in buffer limit configuration.")]
    InvalidValue,
}

/// A client class of `client-output-buffer-limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientClass {
    Normal,
    Replica,
    Pubsub,
}

/// A parsed value: new limits for the classes it names, not yet applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitUpdate(Vec<(ClientClass, ClassLimit)>);

impl FromStr for LimitUpdate {
    type Err = OutputLimitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let words: Vec<&str> = text.split_ascii_whitespace().collect();
        if words.is_empty() || !words.len().is_multiple_of(4) {
            return Err(OutputLimitError::WrongArity);
        }
        let bytes = |word: &str| parse_byte_size(word).map_err(|_| OutputLimitError::InvalidValue);
        words
            .chunks_exact(4)
            .map(|group| {
                let class = match group[0].to_ascii_lowercase().as_str() {
                    "normal" => ClientClass::Normal,
                    "replica" | "slave" => ClientClass::Replica,
                    "pubsub" => ClientClass::Pubsub,
                    _ => return Err(OutputLimitError::InvalidClass),
                };
                let soft_seconds = group[3].parse::<u64>().map_err(|_| OutputLimitError::InvalidValue)?;
                Ok((class, ClassLimit { hard: bytes(group[1])?, soft: bytes(group[2])?, soft_seconds }))
            })
            .collect::<Result<_, _>>()
            .map(LimitUpdate)
    }
}

impl OutputBufferLimits {
    /// These limits with `update` applied: classes it does not name keep theirs, as in Redis.
    pub fn updated(&self, update: &LimitUpdate) -> Self {
        let mut limits = *self;
        for &(class, limit) in &update.0 {
            match class {
                ClientClass::Normal => limits.normal = limit,
                ClientClass::Replica => limits.replica = limit,
                ClientClass::Pubsub => limits.pubsub = limit,
            }
        }
        limits
    }
}

impl FromStr for OutputBufferLimits {
    type Err = OutputLimitError;

    /// A value in Redis's syntax; classes not named keep their defaults.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(OutputBufferLimits::default().updated(&text.parse()?))
    }
}

impl fmt::Display for OutputBufferLimits {
    /// As Redis's CONFIG GET shows it: bytes, with the replica class under its old name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let classes = [("normal", self.normal), ("slave", self.replica), ("pubsub", self.pubsub)];
        for (index, (name, limit)) in classes.into_iter().enumerate() {
            let separator = if index == 0 { "" } else { " " };
            write!(f, "{separator}{name} {} {} {}", limit.hard, limit.soft, limit.soft_seconds)?;
        }
        Ok(())
    }
}

impl Serialize for OutputBufferLimits {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OutputBufferLimits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_syntax_with_units_and_every_class() {
        let limits: OutputBufferLimits = "normal 1mb 512kb 10 pubsub 1 2 3".parse().unwrap();
        assert_eq!(limits.normal, ClassLimit { hard: 1 << 20, soft: 512 << 10, soft_seconds: 10 });
        assert_eq!(limits.pubsub, ClassLimit { hard: 1, soft: 2, soft_seconds: 3 });
        assert_eq!(limits.replica, OutputBufferLimits::default().replica, "classes not named are kept");
        assert_eq!(limits.to_string(), "normal 1048576 524288 10 slave 268435456 67108864 60 pubsub 1 2 3");
        assert_eq!(limits.to_string().parse::<OutputBufferLimits>().unwrap(), limits);
        assert_eq!("REPLICA 0 0 0".parse::<OutputBufferLimits>().unwrap().replica.hard, 0);
    }

    /// The texts are redis-server 7.0.15's.
    #[test]
    fn refusals_have_redis_wording() {
        for (text, error) in [
            ("normal 1mb 512kb", OutputLimitError::WrongArity),
            ("", OutputLimitError::WrongArity),
            ("bogus 1 1 1", OutputLimitError::InvalidClass),
            ("normal x 1 1", OutputLimitError::InvalidValue),
            ("normal 1 1 -1", OutputLimitError::InvalidValue),
            ("normal 1 1 1 pubsub 1 1 x", OutputLimitError::InvalidValue),
        ] {
            assert_eq!(text.parse::<OutputBufferLimits>(), Err(error), "{text:?}");
        }
        assert_eq!(
            OutputLimitError::InvalidValue.to_string(),
            "Error in hard, soft or soft_seconds setting in buffer limit configuration."
        );
    }
}
