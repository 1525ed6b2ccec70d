//! Redis's RDB format (the parts cstore uses), as redis-server 7.0 writes it in `rdb.c`:
//!
//! ```text
//! "REDIS0010"  AUX(name, value)*
//! (SELECTDB n  RESIZEDB(keys, expires)  ([EXPIRETIME_MS t] type key value)*)*
//! EOF  CRC-64/REDIS of every byte before it, little-endian (zero when saved with rdbchecksum no)
//! ```
//!
//! A SELECTDB section per numbered database that has keys, in increasing order of number;
//! a database without keys has none.
//!
//! [`RdbWriter`] writes it (strings, hashes and sets, the types cstore holds); [`load`]
//! reads what redis-server 7 writes (strings, and hashes and sets in every encoding Redis 7
//! uses, `values.rs`), and stops at anything cstore cannot hold unless told to skip it.

mod blob;
mod decode;
mod encode;
mod skip;
#[cfg(test)]
mod tests;
mod values;

pub use decode::{LoadOptions, LoadReport, LoadedKey, load};
pub use encode::{DatabasesWritten, RdbHeader, RdbWriter, SaveOptions};

/// The version cstore writes: redis-server 7.0's, the oldest Redis 7 that must read our files.
pub const RDB_VERSION: u32 = 10;
/// The newest version the reader accepts: Redis 7.4's. Types it does not know still stop the
/// load, naming the key.
pub const MAX_READ_VERSION: u32 = 12;

/// Opcodes and value types, with rdb.h's numbers.
mod op {
    pub(super) const SLOT_INFO: u8 = 244;
    pub(super) const FUNCTION2: u8 = 245;
    pub(super) const FUNCTION_PRE_GA: u8 = 246;
    pub(super) const MODULE_AUX: u8 = 247;
    pub(super) const IDLE: u8 = 248;
    pub(super) const FREQ: u8 = 249;
    pub(super) const AUX: u8 = 250;
    pub(super) const RESIZEDB: u8 = 251;
    pub(super) const EXPIRETIME_MS: u8 = 252;
    pub(super) const EXPIRETIME: u8 = 253;
    pub(super) const SELECTDB: u8 = 254;
    pub(super) const EOF: u8 = 255;

    pub(super) const TYPE_STRING: u8 = 0;
    pub(super) const TYPE_SET: u8 = 2;
    pub(super) const TYPE_HASH: u8 = 4;
    pub(super) const TYPE_SET_INTSET: u8 = 11;
    pub(super) const TYPE_HASH_LISTPACK: u8 = 16;
    pub(super) const TYPE_SET_LISTPACK: u8 = 20;

    /// The two top bits of a length byte: 6-bit, 14-bit, 32/64-bit length, or a special encoding.
    pub(super) const LEN_6BIT: u8 = 0;
    pub(super) const LEN_14BIT: u8 = 1;
    pub(super) const LEN_32BIT: u8 = 0x80;
    pub(super) const LEN_64BIT: u8 = 0x81;
    pub(super) const ENCVAL: u8 = 3;
    /// Special string encodings (the low six bits after ENCVAL).
    pub(super) const ENC_INT8: u8 = 0;
    pub(super) const ENC_INT16: u8 = 1;
    pub(super) const ENC_INT32: u8 = 2;
    pub(super) const ENC_LZF: u8 = 3;
}

/// The RDB checksum: CRC-64/REDIS (Jones polynomial, reflected), as Redis's crc64.c.
/// Slice-by-16 tables: the checksum runs over every byte saved or loaded.
static CRC64: crc::Crc<u64, crc::Table<16>> = crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_REDIS);

/// Why a file could not be loaded. Every variant says what to do or where the file is wrong;
/// the file itself is never changed by a failed load.
#[derive(Debug, thiserror::Error)]
pub enum RdbError {
    #[error("cannot read the RDB file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the RDB file is truncated: it ends at byte {offset} in the middle of {what}")]
    Truncated { offset: u64, what: &'static str },
    #[error("not an RDB file: it does not start with \"REDIS\" and a four-digit version")]
    NotRdb,
    #[error("unsupported RDB version {0}: cstore reads versions 1 to {MAX_READ_VERSION} (redis-server up to 7.4)")]
    UnsupportedVersion(u32),
    #[error("the RDB file is corrupt at byte {offset}: {reason}")]
    Corrupt { offset: u64, reason: String },
    #[error(
        "wrong RDB checksum: the content hashes to {computed:016x} but the file says {stored:016x}; \
         the file is corrupt (rdbchecksum no loads it without the check)"
    )]
    Checksum { computed: u64, stored: u64 },
    #[error(
        "key '{key}' is a {type_name}, a type cstore does not hold: the load stopped and the file is \
         untouched (rdb-skip-unsupported-types yes loads the rest and skips such keys)"
    )]
    UnsupportedType { key: String, type_name: &'static str },
    #[error(
        "key '{key}' is in database {db}, but this server has `databases` {databases} (numbers 0 to \
         {last}): the file was written by a server with more databases. The load stopped and the file is \
         untouched (`databases` {needed} or more loads it; rdb-skip-other-dbs yes loads the rest and skips \
         the keys of databases from {databases} on)",
        last = databases.saturating_sub(1),
        needed = db.saturating_add(1)
    )]
    OtherDatabase { key: String, db: u64, databases: usize },
    #[error(
        "the RDB file holds {what}, which cstore cannot load: the load stopped and the file is untouched \
         (rdb-skip-unsupported-types yes skips it)"
    )]
    UnsupportedContent { what: String },
    #[error("the RDB file holds {what}, which no released Redis writes and cstore cannot read")]
    Unreadable { what: &'static str },
    #[error("key '{key}' could not be stored: {reason}")]
    Rejected { key: String, reason: String },
}

/// A key as error messages and logs show it: printable ASCII as is, other bytes escaped.
pub(crate) fn printable_key(key: &[u8]) -> String {
    const SHOWN: usize = 200;
    let mut text = key[..key.len().min(SHOWN)].escape_ascii().to_string();
    if key.len() > SHOWN {
        text.push_str(&format!("... ({} bytes)", key.len()));
    }
    text
}
