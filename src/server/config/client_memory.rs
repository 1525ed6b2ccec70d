//! `maxmemory-clients`, in Redis 7's syntax: a byte count (`0`, `64mb`) or a percentage of
//! `maxmemory` (`10%`), bounding the memory of all clients together (client eviction).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::byte_size::parse_byte_size;

/// The smallest limit client eviction applies: a lower setting acts as this much, so that a
/// mistaken value cannot disconnect every client including the one that would fix it (Redis's
/// `getClientEvictionLimit` has the same floor).
pub const MIN_CLIENT_MEMORY_LIMIT: u64 = 128 << 10;

/// The limit on the memory of all clients together (the sum of their `tot-mem`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxMemoryClients {
    /// This many bytes; 0 means no limit.
    Bytes(u64),
    /// This percentage (1 to 100) of `maxmemory`; no limit while `maxmemory` is 0 (unlimited),
    /// as in Redis.
    Percent(u8),
}

impl Default for MaxMemoryClients {
    /// 10% of `maxmemory`, where Redis's default is 0 (no limit).
    ///
    /// Why a limit: each client is bounded on its own (`client-output-buffer-limit`, 256 MiB by
    /// default), but not all of them together, and a few clients that stop reading, or one KEYS
    /// per client, can then take more than the process may use: in a pod that is the memory
    /// limit, and the kernel kills the store with every key in it.
    ///
    /// Why a percentage of `maxmemory`: the operator sets `maxmemory` to three quarters of the
    /// pod's memory limit, keeping the last quarter for what `maxmemory` does not stop (client
    /// buffers grow after the data has filled `maxmemory`, plus the allocator's overhead). 10%
    /// of `maxmemory` is 7.5% of the pod, well inside that quarter, and follows the pod's size
    /// where any fixed number of bytes would be too small for a large pod or too large for a
    /// small one: 77 MiB in the default 1 GiB pod, room for about 3,700 idle connections
    /// (about 21 KiB each: a 16 KiB read buffer and the fixed cost) or a few clients with
    /// megabytes of unread replies.
    ///
    /// A percentage of an unlimited `maxmemory` is no limit, as in Redis: a server started
    /// without `maxmemory` has chosen not to bound its memory, and then neither are clients
    /// beyond their own output limits; set `maxmemory` or a byte count here to bound them.
    fn default() -> Self {
        MaxMemoryClients::Percent(10)
    }
}

/// Why a `maxmemory-clients` value was refused, in Redis's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaxMemoryClientsError {
    #[error("argument must be a memory or percent value")]
    Malformed,
    #[error("percentage argument must be less or equal to 100")]
    PercentOver100,
}

impl MaxMemoryClients {
    /// The limit in bytes given `max_memory`; 0 means none. A limit below
    /// [`MIN_CLIENT_MEMORY_LIMIT`] acts as that floor.
    pub fn limit(self, max_memory: u64) -> u64 {
        let bytes = match self {
            MaxMemoryClients::Bytes(bytes) => bytes,
            MaxMemoryClients::Percent(percent) => {
                // Exact in u128: max_memory * 100 cannot overflow it.
                let share = u128::from(max_memory) * u128::from(percent) / 100;
                u64::try_from(share).unwrap_or(u64::MAX)
            }
        };
        if bytes == 0 { 0 } else { bytes.max(MIN_CLIENT_MEMORY_LIMIT) }
    }

    /// One word for an atomic: a byte count as itself (at most `i64::MAX`, as in Redis, so
    /// the top bit is free), a percentage with the top bit set.
    pub(crate) fn to_bits(self) -> u64 {
        match self {
            MaxMemoryClients::Bytes(bytes) => bytes,
            MaxMemoryClients::Percent(percent) => PERCENT_BIT | u64::from(percent),
        }
    }

    pub(crate) fn from_bits(bits: u64) -> Self {
        if bits & PERCENT_BIT == 0 {
            MaxMemoryClients::Bytes(bits)
        } else {
            // Only `to_bits` writes the word, so the low byte holds the percentage.
            MaxMemoryClients::Percent((bits & 0xff) as u8)
        }
    }
}

const PERCENT_BIT: u64 = 1 << 63;

/// The largest byte count accepted: Redis keeps the setting in a signed 64-bit integer.
const MAX_BYTES: u64 = i64::MAX as u64;

impl FromStr for MaxMemoryClients {
    type Err = MaxMemoryClientsError;

    /// `0`, a byte count with Redis's units (`64mb`), or a percentage `1%` to `100%` written
    /// as Redis's integers are (no sign, no leading zero); `0%` means no limit, like `0`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(digits) = text.strip_suffix('%') {
            let canonical = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            if !canonical {
                return Err(MaxMemoryClientsError::Malformed);
            }
            return match digits.parse::<u8>() {
                Ok(0) => Ok(MaxMemoryClients::Bytes(0)),
                Ok(percent) if percent <= 100 => Ok(MaxMemoryClients::Percent(percent)),
                _ => Err(MaxMemoryClientsError::PercentOver100),
            };
        }
        match parse_byte_size(text) {
            Ok(bytes) if bytes <= MAX_BYTES => Ok(MaxMemoryClients::Bytes(bytes)),
            _ => Err(MaxMemoryClientsError::Malformed),
        }
    }
}

impl fmt::Display for MaxMemoryClients {
    /// As Redis's CONFIG GET shows it: bytes as a plain number, a percentage with its sign.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxMemoryClients::Bytes(bytes) => write!(f, "{bytes}"),
            MaxMemoryClients::Percent(percent) => write!(f, "{percent}%"),
        }
    }
}

impl Serialize for MaxMemoryClients {
    /// A byte count as an integer, a percentage as a string (`"10%"`).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MaxMemoryClients::Bytes(bytes) => serializer.serialize_u64(*bytes),
            MaxMemoryClients::Percent(_) => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for MaxMemoryClients {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Integer(i64),
            Text(String),
        }
        let text = match Written::deserialize(deserializer)? {
            Written::Integer(bytes) => bytes.to_string(),
            Written::Text(text) => text,
        };
        text.parse().map_err(|error| {
            serde::de::Error::custom(format!(
                "{text:?}: {error} (a byte count such as 64mb, or a percentage of maxMemory such as \"10%\")"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_percentages_as_redis_writes_them() {
        for (text, value, shown) in [
            ("0", MaxMemoryClients::Bytes(0), "0"),
            ("0%", MaxMemoryClients::Bytes(0), "0"),
            ("50", MaxMemoryClients::Bytes(50), "50"),
            ("64mb", MaxMemoryClients::Bytes(64 << 20), "67108864"),
            ("1GB", MaxMemoryClients::Bytes(1 << 30), "1073741824"),
            ("9223372036854775807", MaxMemoryClients::Bytes(i64::MAX as u64), "9223372036854775807"),
            ("10%", MaxMemoryClients::Percent(10), "10%"),
            ("100%", MaxMemoryClients::Percent(100), "100%"),
        ] {
            assert_eq!(text.parse(), Ok(value), "{text}");
            assert_eq!(value.to_string(), shown);
            assert_eq!(MaxMemoryClients::from_bits(value.to_bits()), value);
        }
    }

    /// The texts are redis-server 7.0.15's.
    #[test]
    fn refusals_have_redis_wording() {
        for text in ["", "abc", "-1", "1.5gb", "%", "-10%", "0.5%", "5.5%", "10 %", "10%%", "007%", "+5%", "1tb"] {
            assert_eq!(text.parse::<MaxMemoryClients>(), Err(MaxMemoryClientsError::Malformed), "{text:?}");
        }
        assert_eq!("9223372036854775808".parse::<MaxMemoryClients>(), Err(MaxMemoryClientsError::Malformed));
        for text in ["101%", "1000%", "99999999999999999999%"] {
            assert_eq!(text.parse::<MaxMemoryClients>(), Err(MaxMemoryClientsError::PercentOver100), "{text}");
        }
        assert_eq!(MaxMemoryClientsError::Malformed.to_string(), "argument must be a memory or percent value");
    }

    #[test]
    fn the_limit_follows_maxmemory_with_redis_floor() {
        let default = MaxMemoryClients::default();
        assert_eq!(default.limit(0), 0, "a percentage of unlimited is no limit");
        assert_eq!(default.limit(768 << 20), (768 << 20) / 10, "77 MiB in the operator's default pod");
        assert_eq!(MaxMemoryClients::Percent(100).limit(u64::MAX), u64::MAX);
        assert_eq!(MaxMemoryClients::Percent(1).limit(1 << 20), MIN_CLIENT_MEMORY_LIMIT);
        assert_eq!(MaxMemoryClients::Bytes(0).limit(1 << 30), 0);
        assert_eq!(MaxMemoryClients::Bytes(50).limit(0), MIN_CLIENT_MEMORY_LIMIT);
        assert_eq!(MaxMemoryClients::Bytes(64 << 20).limit(1 << 20), 64 << 20, "bytes ignore maxmemory");
    }

    #[test]
    fn the_file_takes_integers_and_strings() {
        #[derive(Deserialize)]
        struct File {
            limit: MaxMemoryClients,
        }
        let parse = |text: &str| toml::from_str::<File>(text).map(|file| file.limit);
        assert_eq!(parse("limit = 1048576").unwrap(), MaxMemoryClients::Bytes(1 << 20));
        assert_eq!(parse("limit = \"64mb\"").unwrap(), MaxMemoryClients::Bytes(64 << 20));
        assert_eq!(parse("limit = \"10%\"").unwrap(), MaxMemoryClients::Percent(10));
        let refused = parse("limit = \"200%\"").unwrap_err().to_string();
        assert!(refused.contains("percentage argument must be less or equal to 100"), "{refused}");
        assert!(parse("limit = -1").unwrap_err().to_string().contains("must be a memory or percent value"));
    }
}
