//! Redis's encoding thresholds for its collection types (`hash-max-listpack-entries` and the
//! like), as CONFIG GET and CONFIG SET know them, with their ziplist-era aliases. The hash and
//! set ones drive cstore's compact encodings (`engine/value.rs`); the others are stored and
//! reported for the tools and test harnesses that set them, and change nothing else.

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use super::runtime::{Change, Parameter, RuntimeSettings, integer_in};
use crate::engine::EncodingLimits;

/// One threshold's default and accepted range (its names are in [`PARAMETERS`]).
struct Knob {
    default: i64,
    min: i64,
    max: i64,
}

/// The engine's defaults as `i64`, for the table below.
const fn engine_default(limit: usize) -> i64 {
    limit as i64
}

const REDIS: EncodingLimits = EncodingLimits::REDIS_DEFAULTS;

const KNOBS: [Knob; 11] = [
    Knob { default: engine_default(REDIS.hash_max_listpack_entries), min: 0, max: i64::MAX }, // 0 hash-max-listpack-entries
    Knob { default: engine_default(REDIS.hash_max_listpack_value), min: 0, max: i64::MAX }, // 1 hash-max-listpack-value
    Knob { default: engine_default(REDIS.set_max_intset_entries), min: 0, max: i64::MAX },  // 2 set-max-intset-entries
    Knob { default: engine_default(REDIS.set_max_listpack_entries), min: 0, max: i64::MAX }, // 3 set-max-listpack-entries
    Knob { default: engine_default(REDIS.set_max_listpack_value), min: 0, max: i64::MAX },   // 4 set-max-listpack-value
    Knob { default: 128, min: 0, max: i64::MAX }, // 5 zset-max-listpack-entries
    Knob { default: 64, min: 0, max: i64::MAX },  // 6 zset-max-listpack-value
    Knob { default: -2, min: i32::MIN as i64, max: i32::MAX as i64 }, // 7 list-max-listpack-size
    Knob { default: 0, min: 0, max: i32::MAX as i64 }, // 8 list-compress-depth
    Knob { default: 4096, min: 0, max: i64::MAX }, // 9 stream-node-max-bytes
    Knob { default: 100, min: 0, max: i64::MAX }, // 10 stream-node-max-entries
];

/// The thresholds' live values.
#[derive(Debug)]
pub(super) struct Tuning([AtomicI64; KNOBS.len()]);

impl Default for Tuning {
    fn default() -> Self {
        Tuning(std::array::from_fn(|index| AtomicI64::new(KNOBS[index].default)))
    }
}

impl Tuning {
    pub(super) fn set(&self, index: usize, value: i64) {
        self.0[index].store(value, Relaxed);
    }

    fn get(&self, index: usize) -> i64 {
        self.0[index].load(Relaxed)
    }

    /// The thresholds the engine applies.
    pub(super) fn encoding_limits(&self) -> EncodingLimits {
        let size = |index| usize::try_from(self.get(index)).unwrap_or(0);
        EncodingLimits {
            hash_max_listpack_entries: size(0),
            hash_max_listpack_value: size(1),
            set_max_intset_entries: size(2),
            set_max_listpack_entries: size(3),
            set_max_listpack_value: size(4),
        }
    }
}

fn parse(index: usize, value: &[u8]) -> Result<Change, String> {
    let knob = &KNOBS[index];
    integer_in(value, knob.min, knob.max).map(|value| Change::Tuning(index, value))
}

/// A parameter of knob `$index` under `$name`.
macro_rules! knob {
    ($name:literal, $index:literal) => {
        Parameter {
            name: $name,
            get: |settings: &RuntimeSettings| settings.tuning().get($index).to_string(),
            parse: Some(|value| parse($index, value)),
        }
    };
}

/// Each threshold under Redis 7's name, then under its ziplist-era alias.
pub(super) const PARAMETERS: &[Parameter] = &[
    knob!("hash-max-listpack-entries", 0),
    knob!("hash-max-listpack-value", 1),
    knob!("set-max-intset-entries", 2),
    knob!("set-max-listpack-entries", 3),
    knob!("set-max-listpack-value", 4),
    knob!("zset-max-listpack-entries", 5),
    knob!("zset-max-listpack-value", 6),
    knob!("list-max-listpack-size", 7),
    knob!("list-compress-depth", 8),
    knob!("stream-node-max-bytes", 9),
    knob!("stream-node-max-entries", 10),
    knob!("hash-max-ziplist-entries", 0),
    knob!("hash-max-ziplist-value", 1),
    knob!("zset-max-ziplist-entries", 5),
    knob!("zset-max-ziplist-value", 6),
    knob!("list-max-ziplist-size", 7),
];

#[cfg(test)]
mod tests {
    use crate::server::config::{RuntimeSettings, ServerConfig};

    #[test]
    fn thresholds_are_set_under_either_name_and_reach_the_engine_limits() {
        let settings = RuntimeSettings::from_config(&ServerConfig::default()).unwrap();
        assert_eq!(settings.encoding_limits(), crate::engine::EncodingLimits::default());
        settings.config_set(&[(b"hash-max-ziplist-entries", b"3"), (b"set-max-intset-entries", b"7")]).unwrap();
        let limits = settings.encoding_limits();
        assert_eq!((limits.hash_max_listpack_entries, limits.set_max_intset_entries), (3, 7));
        let shown = settings.config_get(&[b"hash-max-listpack-entries", b"list-max-ziplist-size"]);
        assert_eq!(
            shown,
            [("hash-max-listpack-entries".into(), "3".into()), ("list-max-ziplist-size".into(), "-2".into())]
        );
        let refused = settings.config_set(&[(b"set-max-listpack-value", b"-1")]).unwrap_err();
        assert!(refused.contains("argument must be between 0 and"), "{refused}");
        settings.config_set(&[(b"stream-node-max-entries", b"5")]).unwrap();
        assert_eq!(settings.config_get(&[b"stream-node-max-entries"])[0].1, "5", "stored though unused");
    }
}
