//! SCAN cursors and Redis glob patterns.
//!
//! A cursor is opaque to clients but has a simple layout: the shard index above
//! [`ORDER_BITS`] bits of shard-local position. Position 0 means "start of this shard"; a
//! whole walk starts and ends at cursor 0, as in Redis. Cursors stay below 2^52 so that
//! clients which parse them as IEEE doubles (JavaScript's numbers) keep them exact.

use std::hash::BuildHasher;
use std::ops::Range;

use super::shard::KeyHasher;

/// Bits of the cursor that hold the shard index (enough for the 4096-shard maximum).
const SHARD_BITS: u32 = 12;
/// Bits of the cursor that hold the position inside a shard: 2^40 entries per shard.
pub(crate) const ORDER_BITS: u32 = 40;
const POSITION_MASK: u64 = (1 << ORDER_BITS) - 1;
// Every cursor must be exact as a double (see the module documentation).
const _: () = assert!(SHARD_BITS + ORDER_BITS <= 52);

pub(crate) fn encode_cursor(shard: usize, position: u64) -> u64 {
    ((shard as u64) << ORDER_BITS) | (position & POSITION_MASK)
}

pub(crate) fn decode_cursor(cursor: u64) -> (usize, u64) {
    ((cursor >> ORDER_BITS) as usize, cursor & POSITION_MASK)
}

/// The rank that orders a lock-free shard's walk: the high bits of the key's hash.
pub(crate) fn scan_order(order: &KeyHasher, key: &[u8]) -> u64 {
    order.hash_one(key) >> (64 - ORDER_BITS)
}

/// The next chunk of a downward walk over a dense vector of `len` entries.
///
/// `position` is 0 to start (at the top), else "visit indices below `position`". Returns the
/// indices to visit now and the position to resume from (0 when this chunk ends the walk).
/// Positions above a shrunken `len` are clamped, so a walk survives any deletes.
pub(crate) fn reverse_window(position: u64, len: usize, count: usize) -> (Range<usize>, u64) {
    let top = if position == 0 { len } else { len.min(usize::try_from(position).unwrap_or(usize::MAX)) };
    let bottom = top.saturating_sub(count.max(1));
    (bottom..top, bottom as u64)
}

/// Redis glob matching (`*`, `?`, `[abc]`, `[^a-z]`, `\x`), on raw bytes.
///
/// Every token but `*` consumes exactly one byte, so the classic greedy algorithm with one
/// backtrack point is exact and runs in O(pattern × text) without recursion, whatever the
/// pattern (Redis itself needs a nesting limit for its recursive matcher).
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // Redis's matcher never enters its loop for an empty text, so only an empty pattern
    // matches it; KEYS and SCAN special-case a lone `*` as "everything", empty key included.
    if text.is_empty() {
        return pattern.is_empty() || pattern == b"*";
    }
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, text index it now covers up to).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            if pattern[p] == b'*' {
                star = Some((p + 1, t));
                p += 1;
                continue;
            }
            if let Some(width) = match_one(&pattern[p..], text[t]) {
                p += width;
                t += 1;
                continue;
            }
        }
        match star {
            Some((after_star, covered)) => {
                p = after_star;
                t = covered + 1;
                star = Some((after_star, covered + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// If the token at the start of `pattern` (not `*`) matches `byte`, how many pattern bytes
/// the token spans.
fn match_one(pattern: &[u8], byte: u8) -> Option<usize> {
    match pattern[0] {
        b'?' => Some(1),
        b'\\' if pattern.len() >= 2 => (pattern[1] == byte).then_some(2),
        b'[' => match_class(pattern, byte),
        literal => (literal == byte).then_some(1),
    }
}

/// Matches a `[...]` class the way Redis does: `^` negates, `a-z` is a range (either
/// order, and `a-]` is a range up to `]`), `\` escapes, and an unterminated class runs to
/// the end of the pattern.
fn match_class(pattern: &[u8], byte: u8) -> Option<usize> {
    let mut i = 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    while i < pattern.len() && pattern[i] != b']' {
        if pattern[i] == b'\\' && i + 1 < pattern.len() {
            matched |= pattern[i + 1] == byte;
            i += 2;
        } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' {
            let (lo, hi) = (pattern[i].min(pattern[i + 2]), pattern[i].max(pattern[i + 2]));
            matched |= (lo..=hi).contains(&byte);
            i += 3;
        } else {
            matched |= pattern[i] == byte;
            i += 1;
        }
    }
    // Include the closing bracket when there is one.
    let width = (i + 1).min(pattern.len());
    (matched != negate).then_some(width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_basics() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hallo", true),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("user:*:name", "user:42:name", true),
            ("user:*:name", "user:42:age", false),
            ("*a*b*c", "xxaxxbxxc", true),
            ("*a*b*c", "xxaxxcxxb", false),
            ("[abc", "b", true),
            ("a*", "b", false),
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("**", "", false),
            ("a*", "", false),
            ("[a-]", "]", true),
            ("[a-]", "-", false),
        ];
        for &(pattern, text, expected) in cases {
            assert_eq!(glob_match(pattern.as_bytes(), text.as_bytes()), expected, "{pattern:?} vs {text:?}");
        }
    }

    #[test]
    fn cursors_round_trip_and_stay_exact_as_doubles() {
        let largest = encode_cursor((1 << SHARD_BITS) - 1, POSITION_MASK);
        assert!(largest < 1 << 53, "cursor {largest} would lose precision as a double");
        for (shard, position) in [(0, 0), (1, 5), (4095, POSITION_MASK)] {
            assert_eq!(decode_cursor(encode_cursor(shard, position)), (shard, position));
        }
        assert_eq!(encode_cursor(0, 0), 0);
    }

    #[test]
    fn reverse_windows_cover_and_clamp() {
        assert_eq!(reverse_window(0, 10, 4), (6..10, 6));
        assert_eq!(reverse_window(6, 10, 4), (2..6, 2));
        assert_eq!(reverse_window(2, 10, 4), (0..2, 0));
        // The shard shrank below the cursor: clamp, never index out of range.
        assert_eq!(reverse_window(8, 3, 4), (0..3, 0));
        assert_eq!(reverse_window(0, 0, 4), (0..0, 0));
        assert_eq!(reverse_window(0, 5, 0), (4..5, 4));
    }
}
