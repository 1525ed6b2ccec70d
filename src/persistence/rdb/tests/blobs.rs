//! The listpack and intset parsers on hand-built blobs: every integer and string encoding,
//! and corrupt blobs, which are errors, never panics.

use proptest::prelude::*;

use super::super::blob::{intset, listpack};

/// `lpEncodeBacklen`, written out as listpack.c does.
fn backlen(l: usize) -> Vec<u8> {
    if l <= 127 {
        vec![l as u8]
    } else if l < 16383 {
        vec![(l >> 7) as u8, (l & 127) as u8 | 128]
    } else if l < 2_097_151 {
        vec![(l >> 14) as u8, ((l >> 7) & 127) as u8 | 128, (l & 127) as u8 | 128]
    } else {
        unreachable!("the tests build no larger entry")
    }
}

/// An entry from its encoding and data bytes.
fn entry(encoded: &[u8]) -> Vec<u8> {
    let mut out = encoded.to_vec();
    out.extend(backlen(encoded.len()));
    out
}

/// A listpack of `entries` with header count `count`.
fn pack_counted(entries: &[Vec<u8>], count: u16) -> Vec<u8> {
    let body: Vec<u8> = entries.concat();
    let total = (6 + body.len() + 1) as u32;
    let mut out = total.to_le_bytes().to_vec();
    out.extend(count.to_le_bytes());
    out.extend(body);
    out.push(0xFF);
    out
}

fn pack(entries: &[Vec<u8>]) -> Vec<u8> {
    pack_counted(entries, entries.len() as u16)
}

fn texts(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[test]
fn every_listpack_integer_encoding_reads() {
    let cases: [(&[u8], &str); 16] = [
        (&[0x00], "0"),
        (&[0x7F], "127"),
        (&[0xC0 | 0x0F, 0xFF], "4095"),
        (&[0xC0 | 0x1F, 0xFF], "-1"),
        (&[0xC0 | 0x10, 0x00], "-4096"),
        (&[0xC0, 0x80], "128"),
        (&[0xF1, 0xFF, 0x7F], "32767"),
        (&[0xF1, 0x00, 0x80], "-32768"),
        (&[0xF2, 0xFF, 0xFF, 0x7F], "8388607"),
        (&[0xF2, 0x00, 0x00, 0x80], "-8388608"),
        (&[0xF2, 0x01, 0x02, 0x03], "197121"),
        (&[0xF3, 0xFF, 0xFF, 0xFF, 0x7F], "2147483647"),
        (&[0xF3, 0x00, 0x00, 0x00, 0x80], "-2147483648"),
        (&[0xF4, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], "9223372036854775807"),
        (&[0xF4, 0, 0, 0, 0, 0, 0, 0, 0x80], "-9223372036854775808"),
        (&[0xF4, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], "-2"),
    ];
    let entries: Vec<Vec<u8>> = cases.iter().map(|(encoded, _)| entry(encoded)).collect();
    let expected: Vec<&str> = cases.iter().map(|(_, text)| *text).collect();
    assert_eq!(listpack(&pack(&entries)).unwrap(), texts(&expected));
}

#[test]
fn every_listpack_string_encoding_reads() {
    let long12 = vec![b'x'; 4095];
    let long32 = vec![b'y'; 70_000];
    let mut e12 = vec![0xE0 | 0x0F, 0xFF];
    e12.extend(&long12);
    let mut e12_short = vec![0xE0, 3];
    e12_short.extend(b"abc");
    let mut e32 = vec![0xF0];
    e32.extend((long32.len() as u32).to_le_bytes());
    e32.extend(&long32);
    let entries = [entry(&[0x80]), entry(b"\x85hello"), entry(&e12_short), entry(&e12), entry(&e32)];
    // Backlens of 1, 2 and 3 bytes.
    assert_eq!(entries[3].len() - e12.len(), 2);
    assert_eq!(entries[4].len() - e32.len(), 3);
    let read = listpack(&pack(&entries)).unwrap();
    assert_eq!(read, [b"".to_vec(), b"hello".to_vec(), b"abc".to_vec(), long12, long32]);
}

#[test]
fn a_listpack_of_unknown_count_is_counted() {
    let entries = [entry(&[1]), entry(&[2])];
    assert_eq!(listpack(&pack_counted(&entries, u16::MAX)).unwrap(), texts(&["1", "2"]));
}

#[test]
fn corrupt_listpacks_are_errors() {
    let good = pack(&[entry(b"\x83abc"), entry(&[5])]);
    assert_eq!(listpack(&good).unwrap(), texts(&["abc", "5"]));
    let mut cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "shorter than its header"),
        (good[..5].to_vec(), "shorter than its header"),
        (pack_counted(&[entry(&[1])], 2), "header says 2"),
        (pack_counted(&[entry(&[1]), entry(&[2])], 1), "header says 1"),
        (pack(&[entry(&[0xF5, 0])]), "unknown encoding byte 0xf5"),
        (pack(&[entry(&[0xF1, 0])]), "backlen"),
        (pack(&[vec![0x01, 0x02]]), "backlen"),
        (pack(&[vec![0x01]]), "backlen"),
        (pack(&[entry(&[0xF0, 0xFF, 0xFF, 0xFF, 0xFF, b'a'])]), "string of 4294967295 bytes"),
        (pack(&[vec![0x8A, b'a']]), "string of 10 bytes"),
    ];
    // The header's total disagrees with the blob.
    let mut wrong_total = good.clone();
    wrong_total[0] += 1;
    cases.push((wrong_total, "header says"));
    // No end byte: drop it and fix the total.
    let mut no_end = good[..good.len() - 1].to_vec();
    let len = no_end.len() as u32;
    no_end[..4].copy_from_slice(&len.to_le_bytes());
    cases.push((no_end, "without its end byte"));
    // Bytes after the end byte.
    let mut after_end = good.clone();
    after_end.push(0);
    let len = after_end.len() as u32;
    after_end[..4].copy_from_slice(&len.to_le_bytes());
    cases.push((after_end, "after a listpack's end byte"));
    for (blob, expected) in cases {
        let error = listpack(&blob).unwrap_err();
        assert!(error.contains(expected), "{blob:x?}: {error}");
    }
}

fn intset_blob(width: u32, numbers: &[i64]) -> Vec<u8> {
    let mut out = width.to_le_bytes().to_vec();
    out.extend((numbers.len() as u32).to_le_bytes());
    for n in numbers {
        out.extend(&n.to_le_bytes()[..width as usize]);
    }
    out
}

#[test]
fn every_intset_width_reads() {
    let cases: [(u32, &[i64]); 3] = [
        (2, &[-32768, -1, 0, 7, 32767]),
        (4, &[-2147483648, -40000, 40000, 2147483647]),
        (8, &[i64::MIN, -5_000_000_000, 0, 5_000_000_000, i64::MAX]),
    ];
    for (width, numbers) in cases {
        let expected: Vec<Vec<u8>> = numbers.iter().map(|n| n.to_string().into_bytes()).collect();
        assert_eq!(intset(&intset_blob(width, numbers)).unwrap(), expected, "width {width}");
    }
}

#[test]
fn corrupt_intsets_are_errors() {
    let good = intset_blob(2, &[1, 2, 3]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (good[..7].to_vec(), "shorter than its header"),
        (good[..good.len() - 1].to_vec(), "in 5 bytes"),
        ([&good[..], &[0]].concat(), "in 7 bytes"),
        (intset_blob(3, &[1, 2]), "3-byte integers"),
        (intset_blob(0, &[]), "0-byte integers"),
        (intset_blob(2, &[]), "an intset of 0"),
        (intset_blob(4, &[2, 1]), "not strictly ascending"),
        (intset_blob(8, &[1, 1]), "not strictly ascending"),
        // A count whose byte size overflows 32 bits.
        ([&8u32.to_le_bytes()[..], &u32::MAX.to_le_bytes()].concat(), "4294967295 8-byte integers"),
    ];
    for (blob, expected) in cases {
        let error = intset(&blob).unwrap_err();
        assert!(error.contains(expected), "{blob:x?}: {error}");
    }
}

proptest! {
    #[test]
    fn any_blob_is_a_value_or_an_error(blob in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = listpack(&blob);
        let _ = intset(&blob);
    }

    /// Valid listpacks with their header made consistent, then arbitrary bytes changed.
    #[test]
    fn changed_listpacks_never_panic(
        changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut blob = pack(&[entry(b"\x83abc"), entry(&[0xF3, 1, 2, 3, 4]), entry(&[0xE0, 1, b'z'])]);
        for (index, byte) in changes {
            let i = index.index(blob.len());
            blob[i] = byte;
        }
        let _ = listpack(&blob);
    }
}
