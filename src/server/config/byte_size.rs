//! Byte counts written the way Redis operators write them: `1048576`, `100mb`, `1gb`, `512kb`,
//! plus the IEC spellings (`2GiB`) that Kubernetes users reach for.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// Unit suffixes and their multipliers, matched case-insensitively. As in Redis, a bare
/// `k`/`m`/`g` is decimal while `kb`/`mb`/`gb` are powers of 1024; `kib`/`mib`/`gib` mean
/// what they say.
const UNITS: [(&str, u64); 10] = [
    ("b", 1),
    ("k", 1000),
    ("kb", 1 << 10),
    ("kib", 1 << 10),
    ("m", 1000 * 1000),
    ("mb", 1 << 20),
    ("mib", 1 << 20),
    ("g", 1000 * 1000 * 1000),
    ("gb", 1 << 30),
    ("gib", 1 << 30),
];

/// Why a byte count was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ByteSizeError {
    #[error(
        "{0:?} is not a byte count: expected digits optionally followed by one of b, k, kb, kib, m, mb, mib, g, gb, gib"
    )]
    Malformed(String),
    #[error("{0:?} is too large: at most {max} bytes", max = u64::MAX)]
    TooLarge(String),
}

/// Parses a byte count such as `0`, `4096`, `100mb`, `1GB` or `2GiB` (no sign, no fraction,
/// no spaces: the forms Redis's `maxmemory` accepts, plus the IEC suffixes).
pub fn parse_byte_size(text: &str) -> Result<u64, ByteSizeError> {
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    let multiplier = if suffix.is_empty() {
        Some(1)
    } else {
        UNITS.iter().find(|(unit, _)| unit.eq_ignore_ascii_case(suffix)).map(|&(_, multiplier)| multiplier)
    };
    let (Some(multiplier), false) = (multiplier, digits.is_empty()) else {
        return Err(ByteSizeError::Malformed(text.to_owned()));
    };
    // Only all-digit strings reach here, so the sole way to fail is overflow.
    digits
        .parse::<u64>()
        .ok()
        .and_then(|count| count.checked_mul(multiplier))
        .ok_or_else(|| ByteSizeError::TooLarge(text.to_owned()))
}

/// Serde `deserialize_with` for byte-count settings: an integer number of bytes or a string
/// with a unit.
pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(ByteSizeVisitor)
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = u64;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a number of bytes, or a string such as \"100mb\" or \"2GiB\"")
    }

    fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<u64, E> {
        Ok(bytes)
    }

    fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<u64, E> {
        u64::try_from(bytes).map_err(|_| E::custom(format!("a byte count cannot be negative, got {bytes}")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
        parse_byte_size(text).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_redis_and_iec() {
        for (text, bytes) in [
            ("0", 0),
            ("4096", 4096),
            ("100b", 100),
            ("10k", 10_000),
            ("512kb", 512 * 1024),
            ("1m", 1_000_000),
            ("100mb", 100 << 20),
            ("100MB", 100 << 20),
            ("1g", 1_000_000_000),
            ("1Gb", 1 << 30),
            ("2GiB", 2 << 30),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(parse_byte_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn malformed_counts_are_refused_with_the_accepted_units() {
        for text in ["", "mb", "-1", "+5", " 1", "1 mb", "1.5gb", "10t", "1mbb", "0x10"] {
            let error = parse_byte_size(text).unwrap_err();
            assert_eq!(error, ByteSizeError::Malformed(text.to_owned()));
            assert!(error.to_string().contains("one of b, k, kb, kib, m, mb, mib, g, gb, gib"), "{error}");
        }
    }

    #[test]
    fn overflow_is_refused_not_wrapped() {
        for text in ["18446744073709551616", "17179869184gb", "99999999999999999999999"] {
            let error = parse_byte_size(text).unwrap_err();
            assert_eq!(error.to_string(), format!("{text:?} is too large: at most 18446744073709551615 bytes"));
        }
    }
}
