//! The reader: what redis-server 7 writes (`rdbLoadRio`), streamed key by key into the
//! caller, with every length taken from the file checked against what is actually there.

use std::io::{self, BufRead, Read};

use super::skip::{self, Skippable};
use super::{CRC64, MAX_READ_VERSION, RdbError, op, printable_key, values};
use crate::engine::{EncodingLimits, Value};

/// How a load treats what cstore cannot hold, with the cstore configs they come from.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// `rdb-skip-unsupported-types`: skip (with a warning) keys of the types and encodings
    /// cstore does not load (see `values.rs`), function libraries and module data, instead of
    /// stopping the load.
    pub skip_unsupported_types: bool,
    /// `rdb-skip-other-dbs`: skip keys of databases numbered `databases` and up (which a
    /// server with more databases wrote) instead of stopping.
    pub skip_other_dbs: bool,
    /// `databases`: how many numbered databases the server has; keys of databases 0 to
    /// `databases - 1` are loaded.
    pub databases: usize,
    /// `rdbchecksum`: verify the CRC-64 trailer (a zero trailer means "saved without one").
    pub verify_checksum: bool,
    /// The store clock now: keys whose deadline has passed are not loaded, as Redis does.
    pub now_ms: u64,
}

impl LoadOptions {
    /// Redis's defaults at `now_ms`: 16 databases, nothing skipped, the checksum verified.
    pub fn strict(now_ms: u64) -> Self {
        LoadOptions {
            skip_unsupported_types: false,
            skip_other_dbs: false,
            databases: crate::engine::DEFAULT_DATABASES,
            verify_checksum: true,
            now_ms,
        }
    }
}

/// A key read from the file, ready for the store (cloning its value is cheap).
#[derive(Debug, PartialEq, Eq)]
pub struct LoadedKey {
    /// The database the key is in: below [`LoadOptions::databases`].
    pub db: usize,
    pub key: Vec<u8>,
    pub value: Value,
    pub expires_at_ms: Option<u64>,
}

/// What a successful load found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub version: u32,
    /// The `redis-ver` AUX field: which server wrote the file.
    pub written_by: Option<String>,
    pub keys_loaded: u64,
    /// Keys whose deadline had already passed.
    pub keys_expired: u64,
    /// Keys skipped under `rdb-skip-unsupported-types` or `rdb-skip-other-dbs`.
    pub keys_skipped: u64,
    /// Function libraries and module data skipped under `rdb-skip-unsupported-types`.
    pub other_skipped: u64,
    /// Whether the trailer was verified (false for versions before 5 or a zero trailer).
    pub checksum_verified: bool,
}

/// Skipped keys logged one by one before only the count goes on (in the report).
const SKIP_WARNINGS: u64 = 10;

/// Reads a whole RDB file, handing each live key (a string, hash or set) of databases 0 to
/// `options.databases - 1` to `store` in file order, with its database (the last SELECTDB
/// before it; 0 before any, as Redis), its collections built with `limits` (the store's
/// encoding limits).
/// Stops at the first problem; what `store` received by then is the caller's to discard.
/// `store` may refuse a key with a reason.
pub fn load<R: Read>(
    input: R,
    options: &LoadOptions,
    limits: &EncodingLimits,
    mut store: impl FnMut(&LoadedKey) -> Result<(), String>,
) -> Result<LoadReport, RdbError> {
    let mut input = Input::new(io::BufReader::with_capacity(1 << 16, input));
    let mut report = LoadReport { version: input.magic()?, ..LoadReport::default() };
    let mut db = 0u64;
    let mut expires_at_ms: Option<u64> = None;
    loop {
        let kind = input.byte("an opcode or value type")?;
        match kind {
            op::EOF => break,
            op::EXPIRETIME_MS => {
                let at = i64::from_le_bytes(input.array("an expiry time")?);
                expires_at_ms = Some(u64::try_from(at).unwrap_or(0));
            }
            op::EXPIRETIME => {
                let secs = i32::from_le_bytes(input.array("an expiry time")?);
                expires_at_ms = Some(u64::try_from(secs).unwrap_or(0) * 1000);
            }
            // Eviction hints (LFU frequency, LRU idle time): cstore evicts at random.
            op::FREQ => drop(input.byte("an LFU frequency")?),
            op::IDLE => drop(input.plain_length("an LRU idle time")?),
            op::SELECTDB => db = input.plain_length("a database number")?,
            op::RESIZEDB => {
                input.plain_length("a RESIZEDB size")?;
                input.plain_length("a RESIZEDB size")?;
            }
            // Redis 7.4 cluster slot sizes: hints like RESIZEDB.
            op::SLOT_INFO => {
                for _ in 0..3 {
                    input.plain_length("a slot info field")?;
                }
            }
            op::AUX => {
                let name = input.string("an AUX field name")?;
                let value = input.string("an AUX field value")?;
                if name == b"redis-ver" {
                    report.written_by = Some(String::from_utf8_lossy(&value).into_owned());
                }
            }
            op::MODULE_AUX => {
                let module = skip::module_aux(&mut input)?;
                unsupported_content(options, &mut report, format!("auxiliary data of module '{module}'"))?;
            }
            op::FUNCTION2 => {
                input.string("a function library")?;
                unsupported_content(options, &mut report, "a function library (FUNCTION LOAD)".to_owned())?;
            }
            op::FUNCTION_PRE_GA => return Err(RdbError::Unreadable { what: "a function in the pre-release format" }),
            kind => {
                let key = input.string("a key")?;
                let pending_expiry = expires_at_ms.take();
                let in_range = usize::try_from(db).ok().filter(|db| *db < options.databases);
                let Some(db_index) = in_range.filter(|_| values::is_loadable(kind)) else {
                    skip_key(&mut input, options, &mut report, kind, &key, db)?;
                    continue;
                };
                let value = values::read(&mut input, kind, &key, limits)?;
                if pending_expiry.is_some_and(|at| at <= options.now_ms) {
                    report.keys_expired += 1;
                    continue;
                }
                let loaded = LoadedKey { db: db_index, key, value, expires_at_ms: pending_expiry };
                store(&loaded).map_err(|reason| RdbError::Rejected { key: printable_key(&loaded.key), reason })?;
                report.keys_loaded += 1;
            }
        }
    }
    report.checksum_verified = input.checksum(report.version, options.verify_checksum)?;
    Ok(report)
}

/// A key of a database beyond `options.databases` or of a type cstore does not hold:
/// skipped if the options say so (its value is read and dropped), else the load stops
/// naming it.
fn skip_key(
    input: &mut Input<impl BufRead>,
    options: &LoadOptions,
    report: &mut LoadReport,
    kind: u8,
    key: &[u8],
    db: u64,
) -> Result<(), RdbError> {
    let skippable = Skippable::of(kind).ok_or_else(|| input.corrupt(format!("unknown value type {kind}")))?;
    if !values::is_loadable(kind) && !options.skip_unsupported_types {
        return Err(RdbError::UnsupportedType { key: printable_key(key), type_name: skippable.type_name() });
    }
    let beyond = !usize::try_from(db).is_ok_and(|db| db < options.databases);
    if beyond && !options.skip_other_dbs {
        return Err(RdbError::OtherDatabase { key: printable_key(key), db, databases: options.databases });
    }
    skip::value(input, skippable)?;
    report.keys_skipped += 1;
    if report.keys_skipped <= SKIP_WARNINGS {
        tracing::warn!(
            key = printable_key(key),
            r#type = skippable.type_name(),
            db,
            "RDB load: skipped a key cstore does not hold"
        );
    }
    Ok(())
}

fn unsupported_content(options: &LoadOptions, report: &mut LoadReport, what: String) -> Result<(), RdbError> {
    if !options.skip_unsupported_types {
        return Err(RdbError::UnsupportedContent { what });
    }
    tracing::warn!(skipped = what, "RDB load: skipped content cstore does not hold");
    report.other_skipped += 1;
    Ok(())
}

/// A length field: a count, or the marker of a specially encoded string.
pub(super) enum Length {
    Plain(u64),
    Encoded(u8),
}

/// The file being read: counts bytes (for error positions) and hashes them (for the trailer).
pub(super) struct Input<R> {
    inner: R,
    crc: crc::Digest<'static, u64, crc::Table<16>>,
    offset: u64,
}

/// LZF turns at most 3 bytes into 264 (a back reference of the longest length): a claimed
/// size beyond that is corruption, refused before allocating it.
const LZF_MAX_RATIO: u64 = 88;

impl<R: BufRead> Input<R> {
    fn new(inner: R) -> Self {
        Input { inner, crc: CRC64.digest(), offset: 0 }
    }

    pub(super) fn corrupt(&self, reason: String) -> RdbError {
        RdbError::Corrupt { offset: self.offset, reason }
    }

    fn magic(&mut self) -> Result<u32, RdbError> {
        let magic: [u8; 9] = self.array("the RDB header").map_err(|error| match error {
            RdbError::Truncated { .. } => RdbError::NotRdb,
            other => other,
        })?;
        let (name, digits) = magic.split_at(5);
        if name != b"REDIS" || !digits.iter().all(u8::is_ascii_digit) {
            return Err(RdbError::NotRdb);
        }
        let version = digits.iter().fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
        if !(1..=MAX_READ_VERSION).contains(&version) {
            return Err(RdbError::UnsupportedVersion(version));
        }
        Ok(version)
    }

    pub(super) fn exact(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), RdbError> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.crc.update(buf);
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                Err(RdbError::Truncated { offset: self.offset, what })
            }
            Err(error) => Err(error.into()),
        }
    }

    pub(super) fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], RdbError> {
        let mut buf = [0u8; N];
        self.exact(&mut buf, what)?;
        Ok(buf)
    }

    pub(super) fn byte(&mut self, what: &'static str) -> Result<u8, RdbError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// `len` bytes; the buffer grows with what arrives, so a corrupt huge length meets the
    /// end of the file rather than an allocation of that size.
    pub(super) fn bytes(&mut self, len: u64, what: &'static str) -> Result<Vec<u8>, RdbError> {
        let mut buf = Vec::with_capacity(usize::try_from(len.min(1 << 20)).unwrap_or(0));
        (&mut self.inner).take(len).read_to_end(&mut buf)?;
        self.crc.update(&buf);
        self.offset += buf.len() as u64;
        if (buf.len() as u64) < len {
            return Err(RdbError::Truncated { offset: self.offset, what });
        }
        Ok(buf)
    }

    /// `rdbLoadLenByRef`.
    pub(super) fn length(&mut self, what: &'static str) -> Result<Length, RdbError> {
        let first = self.byte(what)?;
        Ok(match first >> 6 {
            0 => Length::Plain(u64::from(first & 0x3F)),
            1 => Length::Plain(u64::from(first & 0x3F) << 8 | u64::from(self.byte(what)?)),
            3 => Length::Encoded(first & 0x3F),
            _ if first == op::LEN_32BIT => Length::Plain(u64::from(u32::from_be_bytes(self.array(what)?))),
            _ if first == op::LEN_64BIT => Length::Plain(u64::from_be_bytes(self.array(what)?)),
            _ => return Err(self.corrupt(format!("unknown length encoding 0x{first:02x} in {what}"))),
        })
    }

    pub(super) fn plain_length(&mut self, what: &'static str) -> Result<u64, RdbError> {
        match self.length(what)? {
            Length::Plain(len) => Ok(len),
            Length::Encoded(_) => Err(self.corrupt(format!("a string encoding where {what} belongs"))),
        }
    }

    /// `rdbGenericLoadStringObject`: the bytes of a raw, integer-encoded or LZF string.
    pub(super) fn string(&mut self, what: &'static str) -> Result<Vec<u8>, RdbError> {
        let encoding = match self.length(what)? {
            Length::Plain(len) => return self.bytes(len, what),
            Length::Encoded(encoding) => encoding,
        };
        let value = match encoding {
            op::ENC_INT8 => i64::from(i8::from_le_bytes(self.array(what)?)),
            op::ENC_INT16 => i64::from(i16::from_le_bytes(self.array(what)?)),
            op::ENC_INT32 => i64::from(i32::from_le_bytes(self.array(what)?)),
            op::ENC_LZF => return self.lzf(what),
            other => return Err(self.corrupt(format!("unknown string encoding {other} in {what}"))),
        };
        Ok(itoa::Buffer::new().format(value).as_bytes().to_vec())
    }

    fn lzf(&mut self, what: &'static str) -> Result<Vec<u8>, RdbError> {
        let compressed_len = self.plain_length(what)?;
        let len = self.plain_length(what)?;
        if len > compressed_len.saturating_mul(LZF_MAX_RATIO) || compressed_len == 0 {
            return Err(self.corrupt(format!("{what} claims {len} bytes from {compressed_len} LZF-compressed bytes")));
        }
        let compressed = self.bytes(compressed_len, what)?;
        let len = usize::try_from(len).map_err(|_| self.corrupt(format!("{what} is too long for this machine")))?;
        lzf_rust::decompress_into_vec(&compressed, len)
            .map_err(|error| self.corrupt(format!("{what} does not decompress ({error})")))
    }

    /// Reads the 8-byte trailer after EOF (versions 5 and up) and checks it; true if checked.
    fn checksum(&mut self, version: u32, verify: bool) -> Result<bool, RdbError> {
        if version < 5 {
            return Ok(false);
        }
        let computed = std::mem::replace(&mut self.crc, CRC64.digest()).finalize();
        let stored = u64::from_le_bytes(self.array("the checksum")?);
        // Zero: saved with rdbchecksum no, as Redis reads it.
        if !verify || stored == 0 {
            return Ok(false);
        }
        if stored != computed {
            return Err(RdbError::Checksum { computed, stored });
        }
        Ok(true)
    }
}
