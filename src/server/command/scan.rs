//! The arguments and reply shared by SCAN, HSCAN and SSCAN.

use super::{Args, CommandError, Ctx};
use crate::engine::{ValueType, glob_match};

/// SCAN's default COUNT, as in Redis.
const DEFAULT_SCAN_COUNT: usize = 10;

/// The most entries one call examines, whatever COUNT asks. COUNT is only a hint (Redis:
/// "the server may return more or fewer"), and the walk's guarantee holds for any number per
/// call; without a bound, `SCAN 0 COUNT 100000000` would gather a whole store into one reply
/// (memory the output limit only sees once it is built) and hold a shard's lock for the
/// whole shard. 10,000 entries keep a call under about a millisecond of copying.
const MAX_SCAN_COUNT: usize = 10_000;

/// A scan call's cursor and options.
pub(super) struct ScanArgs<'a> {
    pub(super) cursor: u64,
    pub(super) pattern: Option<&'a [u8]>,
    /// COUNT, capped at [`MAX_SCAN_COUNT`].
    pub(super) count: usize,
    /// SCAN's TYPE: `Some(None)` for a type cstore does not hold (nothing matches).
    pub(super) kind: Option<Option<ValueType>>,
}

impl<'a> ScanArgs<'a> {
    /// Reads `cursor [MATCH pattern] [COUNT count]`, and `[TYPE type]` for SCAN.
    pub(super) fn parse(args: &mut Args<'a>, with_type: bool) -> Result<Self, CommandError> {
        let cursor = Self::cursor(args)?;
        Self::options(cursor, args, with_type)
    }

    /// Reads the cursor alone: HSCAN and SSCAN, as Redis's, look the key up between the
    /// cursor and the options.
    pub(super) fn cursor(args: &mut Args<'a>) -> Result<u64, CommandError> {
        std::str::from_utf8(args.bytes()?)
            .ok()
            .filter(|text| text.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|text| text.parse::<u64>().ok())
            .ok_or_else(|| CommandError::Other("ERR invalid cursor".into()))
    }

    /// Reads the options after `cursor`.
    pub(super) fn options(cursor: u64, args: &mut Args<'a>, with_type: bool) -> Result<Self, CommandError> {
        let mut scan = ScanArgs { cursor, pattern: None, count: DEFAULT_SCAN_COUNT, kind: None };
        while let Some(option) = args.option() {
            if args.is_empty() {
                return Err(CommandError::Syntax);
            }
            match option.as_str() {
                "MATCH" => scan.pattern = Some(args.bytes()?),
                "COUNT" => {
                    let count =
                        usize::try_from(args.integer()?).ok().filter(|&c| c >= 1).ok_or(CommandError::Syntax)?;
                    scan.count = count.min(MAX_SCAN_COUNT);
                }
                "TYPE" if with_type => scan.kind = Some(ValueType::from_name(args.bytes()?)),
                _ => return Err(CommandError::Syntax),
            }
        }
        Ok(scan)
    }

    pub(super) fn matches(&self, item: &[u8]) -> bool {
        self.pattern.is_none_or(|pattern| glob_match(pattern, item))
    }
}

/// Replies `[cursor, items]`.
pub(super) fn reply_scan<T: AsRef<[u8]>>(ctx: &mut Ctx<'_, '_>, next: u64, items: &[T]) {
    ctx.out.array(2);
    ctx.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    ctx.out.array(items.len());
    for item in items {
        ctx.out.bulk(item.as_ref());
    }
}
