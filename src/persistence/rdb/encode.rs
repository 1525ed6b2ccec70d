//! The writer: Redis 7.0's `rdbSaveRio`, byte for byte in layout (LZF output may differ from
//! liblzf's own bytes; every LZF decoder reads it). Hashes and sets are written in their
//! plain layouts (`RDB_TYPE_HASH`, `RDB_TYPE_SET`: a length, then the strings), which every
//! Redis loads into whichever encoding its own thresholds pick.

use std::io::{self, Write};

use super::{CRC64, RDB_VERSION, op};
use crate::engine::{PointInTime, SnapshotError, Value};

/// Settings that change the bytes written, with the Redis configs they come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaveOptions {
    /// `rdbcompression`: LZF for strings longer than 20 bytes when it saves space.
    pub compression: bool,
    /// `rdbchecksum`: the CRC-64 trailer; without it the trailer is zero, which readers skip.
    pub checksum: bool,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions { compression: true, checksum: true }
    }
}

/// The AUX fields describing the save, as Redis writes them first.
#[derive(Clone, Copy, Debug)]
pub struct RdbHeader<'a> {
    /// `redis-ver`: the Redis version cstore is compatible with.
    pub redis_version: &'a str,
    /// `ctime`: when the save started, seconds since the epoch.
    pub ctime_secs: u64,
    /// `used-mem`: the memory use of every database at the start, in bytes.
    pub used_mem: u64,
    /// `aof-base`: whether the file is the RDB preamble of an append-only base file (1 there,
    /// 0 in a snapshot, as Redis writes it).
    pub aof_base: bool,
}

/// What [`RdbWriter::databases`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatabasesWritten {
    /// Keys written, over every database.
    pub keys: u64,
    /// Whether a database was flushed (FLUSHDB, FLUSHALL) while its keys were being written:
    /// its section then holds only the keys written before, so the file is not the cut.
    pub flushed: bool,
}

/// Writes one RDB file: [`RdbWriter::new`] writes the header, [`RdbWriter::databases`] a
/// point-in-time cut of the databases (or [`RdbWriter::select_db`] and [`RdbWriter::entry`]
/// key by key), [`RdbWriter::finish`] the trailer. Everything written goes through the
/// checksum.
pub struct RdbWriter<W: Write> {
    out: W,
    crc: crc::Digest<'static, u64, crc::Table<16>>,
    options: SaveOptions,
    /// The database selected and RESIZEDB's hints, written before its first key: like
    /// Redis, a database without keys has no section.
    pending_db: Option<PendingDb>,
    /// Scratch for LZF output, kept across keys.
    compressed: Vec<u8>,
}

impl<W: Write> RdbWriter<W> {
    pub fn new(out: W, options: SaveOptions, header: &RdbHeader<'_>) -> io::Result<Self> {
        let mut writer = RdbWriter { out, crc: CRC64.digest(), options, pending_db: None, compressed: Vec::new() };
        writer.put(format!("REDIS{RDB_VERSION:04}").as_bytes())?;
        writer.aux(b"redis-ver", header.redis_version.as_bytes())?;
        writer.aux(b"redis-bits", usize::BITS.to_string().as_bytes())?;
        writer.aux(b"ctime", header.ctime_secs.to_string().as_bytes())?;
        writer.aux(b"used-mem", header.used_mem.to_string().as_bytes())?;
        writer.aux(b"aof-base", if header.aof_base { b"1" } else { b"0" })?;
        Ok(writer)
    }

    /// Writes every database of `cut` ([`Databases::snapshot`](crate::engine::Databases::snapshot)'s
    /// cut, in increasing order of number) as its own section, as Redis's `rdbSaveRio`: SELECTDB,
    /// RESIZEDB with the database's keys and keys with a deadline at the cut, then its keys. A
    /// database flushed during its walk ends its own section early and the others go on
    /// (reported in [`DatabasesWritten::flushed`]: an AOF base keeps what was written, since
    /// the flush is logged after the cut; a snapshot is abandoned).
    pub fn databases(&mut self, cut: Vec<(usize, PointInTime<'_>)>) -> io::Result<DatabasesWritten> {
        let mut written = DatabasesWritten::default();
        for (number, database) in cut {
            self.select_db(number, database.keys(), database.volatile_keys());
            match database.for_each(|entry| self.entry(entry.key, entry.value, entry.expires_at_ms)) {
                Ok(report) => written.keys += report.keys,
                Err(SnapshotError::Flushed) => written.flushed = true,
                Err(SnapshotError::Emit(error)) => return Err(error),
            }
        }
        Ok(written)
    }

    /// The keys written next belong to database `number`, which has `keys` keys of which
    /// `volatile_keys` have a deadline (RESIZEDB's hints, which let a reader presize). Written
    /// with the first key, so that a database without keys has no section, as in Redis. Keys
    /// written before any `select_db` load into database 0.
    pub fn select_db(&mut self, number: usize, keys: u64, volatile_keys: u64) {
        self.pending_db = Some(PendingDb { number: number as u64, keys, volatile_keys });
    }

    /// Writes one key, with its deadline in ms since the epoch if it has one.
    pub fn entry(&mut self, key: &[u8], value: &Value, expires_at_ms: Option<u64>) -> io::Result<()> {
        if let Some(db) = self.pending_db.take() {
            self.put(&[op::SELECTDB])?;
            self.length(db.number)?;
            self.put(&[op::RESIZEDB])?;
            self.length(db.keys)?;
            self.length(db.volatile_keys)?;
        }
        if let Some(at) = expires_at_ms {
            self.put(&[op::EXPIRETIME_MS])?;
            self.put(&at.to_le_bytes())?;
        }
        match value {
            Value::String(text) => {
                self.put(&[op::TYPE_STRING])?;
                self.string(key)?;
                self.string(text)
            }
            Value::Hash(hash) => {
                self.put(&[op::TYPE_HASH])?;
                self.string(key)?;
                self.length(hash.len() as u64)?;
                hash.try_for_each(|field, value| {
                    self.string(field)?;
                    self.string(value)
                })
            }
            Value::Set(set) => {
                self.put(&[op::TYPE_SET])?;
                self.string(key)?;
                self.length(set.len() as u64)?;
                set.try_for_each(|member| self.string(member))
            }
        }
    }

    /// Writes EOF and the checksum, flushes, and hands back the output (to fsync it).
    pub fn finish(mut self) -> io::Result<W> {
        self.put(&[op::EOF])?;
        let checksum = if self.options.checksum { self.crc.finalize() } else { 0 };
        self.out.write_all(&checksum.to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn aux(&mut self, name: &[u8], value: &[u8]) -> io::Result<()> {
        self.put(&[op::AUX])?;
        self.string(name)?;
        self.string(value)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc.update(bytes);
        self.out.write_all(bytes)
    }

    /// `rdbSaveLen`: 6, 14, 32 or 64 bits, the wider forms big-endian.
    fn length(&mut self, len: u64) -> io::Result<()> {
        if len < 1 << 6 {
            self.put(&[(op::LEN_6BIT << 6) | len as u8])
        } else if len < 1 << 14 {
            self.put(&[(op::LEN_14BIT << 6) | (len >> 8) as u8, len as u8])
        } else if let Ok(len) = u32::try_from(len) {
            self.put(&[op::LEN_32BIT])?;
            self.put(&len.to_be_bytes())
        } else {
            self.put(&[op::LEN_64BIT])?;
            self.put(&len.to_be_bytes())
        }
    }

    /// `rdbSaveRawString`: a canonical integer of at most 11 characters as INT8/16/32, else
    /// LZF when compression is on, the string is longer than 20 bytes and it saves at least
    /// 4 bytes, else the length and the bytes.
    fn string(&mut self, s: &[u8]) -> io::Result<()> {
        if s.len() <= 11
            && let Some(encoded) = integer_encoding(s)
        {
            return self.put(&encoded.bytes[..encoded.len]);
        }
        if self.options.compression && s.len() > 20 && self.lzf(s)? {
            return Ok(());
        }
        self.length(s.len() as u64)?;
        self.put(s)
    }

    /// `rdbSaveLzfStringObject`: false (nothing written) when LZF does not fit in len - 4.
    fn lzf(&mut self, s: &[u8]) -> io::Result<bool> {
        let room = s.len() - 4;
        let mut compressed = std::mem::take(&mut self.compressed);
        compressed.resize(room, 0);
        let written = match lzf_rust::compress(s, &mut compressed) {
            Ok(n) if n > 0 => {
                self.put(&[(op::ENCVAL << 6) | op::ENC_LZF])?;
                self.length(n as u64)?;
                self.length(s.len() as u64)?;
                self.put(&compressed[..n])?;
                true
            }
            // Output too small (incompressible) or nothing produced: stored raw, as Redis does.
            _ => false,
        };
        self.compressed = compressed;
        Ok(written)
    }
}

/// A database selected with [`RdbWriter::select_db`] whose section is not written yet.
#[derive(Clone, Copy, Debug)]
struct PendingDb {
    number: u64,
    keys: u64,
    volatile_keys: u64,
}

/// An integer encoding: at most 1 + 4 bytes.
struct Encoded {
    bytes: [u8; 5],
    len: usize,
}

/// `rdbTryIntegerEncoding`: only a string that is exactly how Redis prints its integer
/// ("12", "-7"; not "012", "+1", "-0" or " 1") and fits in 32 bits, so loading gives back
/// the same bytes.
fn integer_encoding(s: &[u8]) -> Option<Encoded> {
    let text = std::str::from_utf8(s).ok()?;
    let value: i64 = text.parse().ok()?;
    let mut buffer = itoa::Buffer::new();
    if buffer.format(value).as_bytes() != s {
        return None;
    }
    let mut bytes = [0u8; 5];
    let len = if let Ok(v) = i8::try_from(value) {
        bytes[0] = (op::ENCVAL << 6) | op::ENC_INT8;
        bytes[1..2].copy_from_slice(&v.to_le_bytes());
        2
    } else if let Ok(v) = i16::try_from(value) {
        bytes[0] = (op::ENCVAL << 6) | op::ENC_INT16;
        bytes[1..3].copy_from_slice(&v.to_le_bytes());
        3
    } else if let Ok(v) = i32::try_from(value) {
        bytes[0] = (op::ENCVAL << 6) | op::ENC_INT32;
        bytes[1..5].copy_from_slice(&v.to_le_bytes());
        5
    } else {
        return None;
    };
    Some(Encoded { bytes, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(s: &str) -> Option<Vec<u8>> {
        integer_encoding(s.as_bytes()).map(|e| e.bytes[..e.len].to_vec())
    }

    #[test]
    fn only_canonical_32_bit_integers_are_integer_encoded() {
        assert_eq!(encoded("0"), Some(vec![0xC0, 0]));
        assert_eq!(encoded("-128"), Some(vec![0xC0, 0x80]));
        assert_eq!(encoded("128"), Some(vec![0xC1, 0x80, 0]));
        assert_eq!(encoded("-32769"), Some(vec![0xC2, 0xFF, 0x7F, 0xFF, 0xFF]));
        assert_eq!(encoded("2147483647"), Some(vec![0xC2, 0xFF, 0xFF, 0xFF, 0x7F]));
        for not in ["2147483648", "012", "+1", "-0", " 1", "1 ", "", "1.5", "abc"] {
            assert_eq!(encoded(not), None, "{not:?}");
        }
    }

    fn written_length(len: u64) -> Vec<u8> {
        let header = RdbHeader { redis_version: "7.0.0", ctime_secs: 0, used_mem: 0, aof_base: false };
        let mut writer = RdbWriter::new(Vec::new(), SaveOptions::default(), &header).unwrap();
        let start = writer.out.len();
        writer.length(len).unwrap();
        writer.out[start..].to_vec()
    }

    #[test]
    fn lengths_use_redis_widths() {
        assert_eq!(written_length(63), [63]);
        assert_eq!(written_length(64), [0x40, 64]);
        assert_eq!(written_length(16383), [0x7F, 0xFF]);
        assert_eq!(written_length(16384), [0x80, 0, 0, 0x40, 0]);
        assert_eq!(written_length(1 << 32), [0x81, 0, 0, 0, 1, 0, 0, 0, 0]);
    }
}
