//! SCAN's order and cursors, and Redis glob patterns.
//!
//! **One order for every engine.** A key's place in SCAN's order is its *slot*: the low 12
//! bits of the store's hash of the key, bit-reversed (Redis's reverse-binary cursor,
//! `dict.c`). An engine with 2^b shards routes a key by the low b bits of the same hash, so
//! each of its shards owns one contiguous range of 4096 / 2^b slots, and a walk visits the
//! shards one after the other in slot order. Every engine a store ever runs uses the store's
//! hash, so a key keeps its slot across a migration: a cursor's slot position means the same
//! thing after the strategy or the shard count changed. Inside a shard the walk goes on at a
//! shard-local *offset* (a dense index for the locked and copy-on-write shards; for the
//! lock-free one, which keeps one map per slot, the slot inside the shard and a rank of a
//! hash's high bits inside it, see `lockfree.rs`), which only the engine that issued it understands,
//! so a cursor also names its engine (a tag).
//!
//! **During a migration** keys only move, from the source engine to the target. The slot
//! space is cut into *units*, each the coarser of a source shard's and a target shard's range;
//! a walk covers a unit by walking its source shards, then its target shards. A key present
//! throughout is either still in the source when the walk passes it there, or it moved
//! before, and is then in the target for the whole target part. A cursor whose engine is
//! gone (a migration completed between two calls) resumes at the start of the unit it was in
//! or of the current engine's shard there, whichever is larger: it revisits at most one shard
//! of the coarser engine (with one shard, that is the whole walk again), and skips nothing.
//! `tests/scan.rs` checks walks across every kind of migration, and that a walk which skips
//! a migration's target part is caught.
//!
//! **What a cursor reveals.** Its slot position says which shard a walk is in, so a client
//! that scans with COUNT 1 can learn which of its keys share a shard, as Redis's cursor
//! reveals which keys share a bucket. The routing hash is SipHash under a per-process random
//! key (`Router` in `shard.rs`), so that knowledge predicts nothing about any other key: to
//! crowd one shard a client must insert and probe about one key per shard for every key it
//! lands there, no better than chance. A lock-free shard's offset carries the high bits of a
//! second, independent keyed hash ([`Router::order`]) that nothing but this walk uses: not the
//! routing, and not the map inside the shard (foldhash, seeded per map), so those bits are
//! of no use to an attacker either.
//!
//! **The cursor**, opaque to clients: slot position (12 bits), log2 of the issuing layout's
//! unit (4 bits), engine tag (6 bits), offset (30 bits). 0 starts and ends a walk. Cursors
//! stay below 2^52 so that clients which parse them as IEEE doubles (JavaScript's numbers)
//! keep them exact. A tag is the engine's number modulo 63, so a client that pauses a walk
//! across 63 or more engines (32 migrations) may resume at a wrong offset; a shard holds fewer
//! than 2^30 keys (memory bounds it far lower).

use std::ops::Range;

use super::shard::Router;

/// Bits of the slot space: one slot per shard at the 4096-shard maximum.
const SPACE_BITS: u32 = 12;
const SPACE: u32 = 1 << SPACE_BITS;
const UNIT_BITS: u32 = 4;
const TAG_BITS: u32 = 6;
/// Bits of the shard-local offset.
const OFFSET_BITS: u32 = 30;
/// Bits of a lock-free shard's rank inside one slot's map: the offset names the slot's map
/// (up to [`SPACE_BITS`] bits, one shard owning every slot) above the rank.
pub(crate) const RANK_BITS: u32 = OFFSET_BITS - SPACE_BITS;
const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;
// Every cursor must be exact as a double (see the module documentation).
const _: () = assert!(SPACE_BITS + UNIT_BITS + TAG_BITS + OFFSET_BITS <= 52);
const _: () = assert!(1 << SPACE_BITS == super::config::MAX_SHARDS);

/// The cursor tag of engine number `id`: never 0, so that no cursor in the middle of a walk
/// is 0.
pub(crate) fn engine_tag(id: u64) -> u8 {
    (id % ((1 << TAG_BITS) - 1) + 1) as u8
}

/// The rank that orders a lock-free shard's walk inside one slot: the high bits of the key's
/// order hash ([`Router::order`], independent of the routing hash).
pub(crate) fn scan_order(router: &Router, key: &[u8]) -> u64 {
    router.order(key) >> (64 - RANK_BITS)
}

/// The slot of a key whose routing hash is `route` ([`Router::route`]): its low bits,
/// bit-reversed, so that the shard that owns it ([`shard_at`]) is the one `route` picks.
pub(crate) fn slot_of(route: u64) -> u32 {
    ((route as u32) & (SPACE - 1)).reverse_bits() >> (32 - SPACE_BITS)
}

/// Slots each shard of an engine with `shards` shards owns.
fn span(shards: usize) -> u32 {
    SPACE / shards as u32
}

/// The shard, among `shards`, that owns slot `position`.
fn shard_at(position: u32, shards: usize) -> usize {
    let bits = shards.trailing_zeros();
    if bits == 0 { 0 } else { ((position >> (SPACE_BITS - bits)).reverse_bits() >> (32 - bits)) as usize }
}

/// Which engine of a layout a walk is in: the only one, or a migration's source or target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Source,
    Target,
}

/// The shape of a layout, which is all a walk needs: shard counts and engine tags.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Geometry {
    Stable { shards: usize, tag: u8 },
    Migrating { source: (usize, u8), target: (usize, u8) },
}

/// Where a walk stands: the slot where its current shard's range starts, the engine, and
/// the offset inside the shard (0: its start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Walk {
    pub(crate) position: u32,
    pub(crate) part: Part,
    pub(crate) offset: u64,
}

impl Geometry {
    fn engine(&self, part: Part) -> (usize, u8) {
        match (*self, part) {
            (Geometry::Stable { shards, tag }, _) => (shards, tag),
            (Geometry::Migrating { source, .. }, Part::Source) => source,
            (Geometry::Migrating { target, .. }, Part::Target) => target,
        }
    }

    /// Slots per unit: a shard's range, or during a migration the coarser of the two.
    fn unit(&self) -> u32 {
        match *self {
            Geometry::Stable { shards, .. } => span(shards),
            Geometry::Migrating { source, target } => span(source.0).max(span(target.0)),
        }
    }

    /// The walk a client's cursor continues (0: a new walk).
    pub(crate) fn resume(&self, cursor: u64) -> Walk {
        let start = Walk { position: 0, part: Part::Source, offset: 0 };
        if cursor == 0 {
            return start;
        }
        let offset = cursor & OFFSET_MASK;
        let tag = ((cursor >> OFFSET_BITS) & ((1 << TAG_BITS) - 1)) as u8;
        let unit_bits = ((cursor >> (OFFSET_BITS + TAG_BITS)) & ((1 << UNIT_BITS) - 1)) as u32;
        let position = ((cursor >> (OFFSET_BITS + TAG_BITS + UNIT_BITS)) as u32) & (SPACE - 1);
        let part = [Part::Source, Part::Target].into_iter().find(|&part| {
            let (_, engine_tag) = self.engine(part);
            let migrating = matches!(self, Geometry::Migrating { .. });
            engine_tag == tag && (migrating || part == Part::Source)
        });
        match part {
            // The cursor's own engine: its position starts one of that engine's shards.
            Some(part) => Walk { position: position & !(span(self.engine(part).0) - 1), part, offset },
            // Its engine is gone: restart the larger of its unit and the current one.
            None => {
                let unit = (1u32 << unit_bits.min(SPACE_BITS)).max(self.unit());
                Walk { position: position & !(unit - 1), ..start }
            }
        }
    }

    /// The engine part and shard index the walk reads next.
    pub(crate) fn shard(&self, walk: &Walk) -> (Part, usize) {
        (walk.part, shard_at(walk.position, self.engine(walk.part).0))
    }

    /// Moves the walk past its current shard; false when the whole slot space is done.
    pub(crate) fn advance(&self, walk: &mut Walk) -> bool {
        let unit = self.unit();
        let unit_start = walk.position & !(unit - 1);
        walk.offset = 0;
        walk.position += span(self.engine(walk.part).0);
        if walk.position < unit_start + unit {
            return true;
        }
        match (self, walk.part) {
            (Geometry::Migrating { .. }, Part::Source) => {
                walk.part = Part::Target;
                walk.position = unit_start;
            }
            _ => walk.part = Part::Source,
        }
        walk.position < SPACE
    }

    /// The cursor a client gets back for `walk`.
    pub(crate) fn cursor(&self, walk: &Walk) -> u64 {
        let (_, tag) = self.engine(walk.part);
        let unit_bits = u64::from(self.unit().trailing_zeros());
        (u64::from(walk.position) << (OFFSET_BITS + TAG_BITS + UNIT_BITS))
            | (unit_bits << (OFFSET_BITS + TAG_BITS))
            | (u64::from(tag) << OFFSET_BITS)
            | (walk.offset & OFFSET_MASK)
    }
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
    fn reverse_windows_cover_and_clamp() {
        assert_eq!(reverse_window(0, 10, 4), (6..10, 6));
        assert_eq!(reverse_window(6, 10, 4), (2..6, 2));
        assert_eq!(reverse_window(2, 10, 4), (0..2, 0));
        // The shard shrank below the cursor: clamp, never index out of range.
        assert_eq!(reverse_window(8, 3, 4), (0..3, 0));
        assert_eq!(reverse_window(0, 0, 4), (0..0, 0));
        assert_eq!(reverse_window(0, 5, 0), (4..5, 4));
    }

    /// A key's slot belongs to the shard its routing hash picks, in every shard count.
    #[test]
    fn a_keys_slot_is_in_its_shard() {
        for route in [0u64, 1, 0x5a5, 0xfff, 0x1234_5678_9abc_def0, u64::MAX] {
            for bits in 0..=SPACE_BITS {
                let shards = 1usize << bits;
                assert_eq!(
                    shard_at(slot_of(route), shards),
                    (route & (shards as u64 - 1)) as usize,
                    "{route:#x}, {shards}"
                );
            }
        }
    }
}
