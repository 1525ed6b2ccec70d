//! The two serialized collections redis-server 7 writes inside one RDB string, parsed with
//! every length checked against the blob (a corrupt blob is an error, never a panic):
//!
//! - an intset (`intset.c`, sets of integers, `RDB_TYPE_SET_INTSET`): u32 LE width (2, 4 or
//!   8), u32 LE count, then that many little-endian signed integers, strictly ascending;
//! - a listpack (`listpack.c`, small hashes and, from Redis 7.2, small sets): u32 LE total
//!   bytes, u16 LE count (65535: unknown), entries, then the end byte 0xFF. Each entry is an
//!   encoding byte (an integer of 7, 13, 16, 24, 32 or 64 bits, or a string with a 6, 12 or
//!   32-bit length), its data, and a "backlen" (the entry's size, for walking backwards).
//!
//! Integers come back as the decimal text Redis would reply with.

/// The members of an intset blob, as decimal text.
pub(super) fn intset(blob: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let (header, body) = blob.split_at_checked(8).ok_or("an intset shorter than its header")?;
    let width = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let count = u32::from_le_bytes(header[4..].try_into().expect("4 bytes")) as usize;
    if ![2, 4, 8].contains(&width) {
        return Err(format!("an intset of {width}-byte integers"));
    }
    if count == 0 || body.len() as u64 != count as u64 * width as u64 {
        return Err(format!("an intset of {count} {width}-byte integers in {} bytes", body.len()));
    }
    let numbers: Vec<i64> = body
        .chunks_exact(width)
        .map(|bytes| match *bytes {
            [a, b] => i64::from(i16::from_le_bytes([a, b])),
            [a, b, c, d] => i64::from(i32::from_le_bytes([a, b, c, d])),
            _ => i64::from_le_bytes(bytes.try_into().expect("8 bytes")),
        })
        .collect();
    if numbers.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err("an intset whose integers are not strictly ascending".to_owned());
    }
    Ok(numbers.iter().map(|n| itoa::Buffer::new().format(*n).as_bytes().to_vec()).collect())
}

/// The header's count when a listpack holds 65535 entries or more.
const COUNT_UNKNOWN: u16 = u16::MAX;
const END: u8 = 0xFF;

/// The entries of a listpack blob, in order; integers as decimal text.
pub(super) fn listpack(blob: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let (header, mut rest) = blob.split_at_checked(6).ok_or("a listpack shorter than its header")?;
    let total = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    let count = u16::from_le_bytes(header[4..].try_into().expect("2 bytes"));
    if total as usize != blob.len() {
        return Err(format!("a listpack of {} bytes whose header says {total}", blob.len()));
    }
    let mut entries = Vec::with_capacity(usize::from(count.min(1024)));
    loop {
        match rest {
            [] => return Err("a listpack without its end byte".to_owned()),
            [END] => break,
            [END, ..] => return Err("bytes after a listpack's end byte".to_owned()),
            _ => {
                let (entry, after) =
                    entry(rest).map_err(|reason| format!("listpack entry {}: {reason}", entries.len()))?;
                entries.push(entry);
                rest = after;
            }
        }
    }
    if count != COUNT_UNKNOWN && usize::from(count) != entries.len() {
        return Err(format!("a listpack of {} entries whose header says {count}", entries.len()));
    }
    Ok(entries)
}

/// One entry at the start of `bytes`: its value and what follows its backlen.
fn entry(bytes: &[u8]) -> Result<(Vec<u8>, &[u8]), String> {
    let first = bytes[0];
    let take = |len: usize| bytes.get(..len).ok_or_else(|| format!("{len} bytes of entry, {} left", bytes.len()));
    // (bytes of encoding and data, the value)
    let (size, value) = match first {
        0x00..=0x7F => (1, Item::Int(i64::from(first))),
        0x80..=0xBF => string(bytes, 1, usize::from(first & 0x3F))?,
        0xC0..=0xDF => {
            let raw = take(2)?;
            let unsigned = i64::from(u16::from_be_bytes([first & 0x1F, raw[1]]));
            (2, Item::Int(sign_extend(unsigned, 13)))
        }
        0xE0..=0xEF => string(bytes, 2, usize::from(u16::from_be_bytes([first & 0x0F, take(2)?[1]])))?,
        0xF0 => {
            let len = u32::from_le_bytes(take(5)?[1..5].try_into().expect("4 bytes"));
            string(bytes, 5, len as usize)?
        }
        0xF1..=0xF4 => {
            let width = [2, 3, 4, 8][usize::from(first - 0xF1)];
            let data = &take(1 + width)?[1..];
            let unsigned = data.iter().rev().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
            (1 + width, Item::Int(sign_extend(unsigned as i64, 8 * width as u32)))
        }
        _ => return Err(format!("unknown encoding byte 0x{first:02x}")),
    };
    let backlen = backlen(size);
    let end = size + backlen.len();
    if bytes.get(size..end) != Some(&backlen[..]) {
        return Err(format!("a wrong or missing backlen after an entry of {size} bytes"));
    }
    let value = match value {
        Item::Int(n) => itoa::Buffer::new().format(n).as_bytes().to_vec(),
        Item::Str(range) => bytes[range].to_vec(),
    };
    Ok((value, &bytes[end..]))
}

enum Item {
    Int(i64),
    /// Where the string's bytes are in the entry.
    Str(std::ops::Range<usize>),
}

/// A string entry of `len` bytes after a `header`-byte encoding.
fn string(bytes: &[u8], header: usize, len: usize) -> Result<(usize, Item), String> {
    let size = header.checked_add(len).filter(|size| *size <= bytes.len());
    let size = size.ok_or_else(|| format!("a string of {len} bytes with {} left", bytes.len()))?;
    Ok((size, Item::Str(header..size)))
}

/// The low `bits` bits of `unsigned` as a two's complement number.
fn sign_extend(unsigned: i64, bits: u32) -> i64 {
    let shift = 64 - bits;
    (unsigned << shift) >> shift
}

/// `lpEncodeBacklen`: `size` in 7-bit groups, most significant first, every byte but the
/// first with the top bit set (so a backwards reader knows to go on).
fn backlen(size: usize) -> Vec<u8> {
    let groups = match size {
        0..=127 => 1,
        128..16383 => 2,
        16383..2_097_151 => 3,
        2_097_151..268_435_455 => 4,
        _ => 5,
    };
    (0..groups)
        .rev()
        .map(|i| {
            let group = (size >> (7 * i)) as u8 & 0x7F;
            if i == groups - 1 { group } else { group | 0x80 }
        })
        .collect()
}
