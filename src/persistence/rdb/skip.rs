//! Reading past values cstore does not hold (every type redis-server 7.0 to 7.4 writes), for
//! `rdb-skip-unsupported-types yes` and `rdb-skip-other-dbs yes`. Each layout follows
//! `rdbLoadObject`; nothing is kept.

use std::io::BufRead;

use super::RdbError;
use super::decode::Input;

/// A value type the reader can walk past, grouped by layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Skippable {
    /// One string (type 0).
    String,
    /// A count, then that many strings per element: list, set (1 per element), hash (2).
    Strings { per_element: u64, type_name: &'static str },
    /// A count of (member, score) pairs; the score as text (type 3) or 8 bytes (type 5).
    Zset { binary_scores: bool },
    /// One serialized blob: ziplist, intset or listpack encodings.
    Blob { type_name: &'static str },
    /// A count of (container kind, ziplist or listpack) pairs (type 18; 14 has no kind).
    Quicklist { with_container: bool },
    /// Stream layouts 1, 2 and 3 (types 15, 19, 21).
    Stream { layout: u8 },
    /// A module's value, written with typed opcodes (type 7).
    Module,
    /// Redis 7.4's hash with field expiries (24) and its listpack form (25).
    HashWithTtls { listpack: bool },
    /// Types only pre-release Redis builds wrote (6, 22, 23): their layout cannot be walked.
    PreRelease { type_name: &'static str },
}

impl Skippable {
    /// The layout of value type `kind`; `None` for a type no Redis writes.
    pub(super) fn of(kind: u8) -> Option<Skippable> {
        use Skippable::*;
        Some(match kind {
            0 => String,
            1 => Strings { per_element: 1, type_name: "list" },
            2 => Strings { per_element: 1, type_name: "set" },
            3 => Zset { binary_scores: false },
            4 => Strings { per_element: 2, type_name: "hash" },
            5 => Zset { binary_scores: true },
            6 => PreRelease { type_name: "module value" },
            7 => Module,
            9 | 13 | 16 => Blob { type_name: "hash" },
            10 => Blob { type_name: "list" },
            11 | 20 => Blob { type_name: "set" },
            12 | 17 => Blob { type_name: "zset" },
            14 => Quicklist { with_container: false },
            15 => Stream { layout: 1 },
            18 => Quicklist { with_container: true },
            19 => Stream { layout: 2 },
            21 => Stream { layout: 3 },
            22 | 23 => PreRelease { type_name: "hash" },
            24 => HashWithTtls { listpack: false },
            25 => HashWithTtls { listpack: true },
            _ => return None,
        })
    }

    /// The name TYPE gives such a key in Redis.
    pub(super) fn type_name(self) -> &'static str {
        match self {
            Skippable::String => "string",
            Skippable::Strings { type_name, .. }
            | Skippable::Blob { type_name }
            | Skippable::PreRelease { type_name } => type_name,
            Skippable::Zset { .. } => "zset",
            Skippable::Quicklist { .. } => "list",
            Skippable::Stream { .. } => "stream",
            Skippable::Module => "module value",
            Skippable::HashWithTtls { .. } => "hash",
        }
    }
}

/// Reads one value of the given layout and drops it.
pub(super) fn value(input: &mut Input<impl BufRead>, layout: Skippable) -> Result<(), RdbError> {
    match layout {
        Skippable::String | Skippable::Blob { .. } => drop(input.string("a skipped value")?),
        Skippable::Strings { per_element, .. } => {
            let count = input.plain_length("an element count")?;
            for _ in 0..count {
                for _ in 0..per_element {
                    input.string("a skipped element")?;
                }
            }
        }
        Skippable::Zset { binary_scores } => {
            let count = input.plain_length("a zset size")?;
            for _ in 0..count {
                input.string("a zset member")?;
                if binary_scores {
                    input.array::<8>("a zset score")?;
                } else {
                    // rdbLoadDoubleValue: a length byte; 253-255 are NaN and the infinities.
                    let len = input.byte("a zset score")?;
                    if len < 253 {
                        input.bytes(u64::from(len), "a zset score")?;
                    }
                }
            }
        }
        Skippable::Quicklist { with_container } => {
            let count = input.plain_length("a quicklist node count")?;
            for _ in 0..count {
                if with_container {
                    input.plain_length("a quicklist container kind")?;
                }
                input.string("a quicklist node")?;
            }
        }
        Skippable::Stream { layout } => stream(input, layout)?,
        Skippable::Module => {
            input.plain_length("a module id")?;
            module_opcodes(input)?;
        }
        Skippable::HashWithTtls { listpack } => {
            input.array::<8>("a hash's earliest field expiry")?;
            if listpack {
                input.string("a hash listpack")?;
            } else {
                let count = input.plain_length("a hash size")?;
                for _ in 0..count {
                    input.plain_length("a hash field expiry")?;
                    input.string("a hash field")?;
                    input.string("a hash value")?;
                }
            }
        }
        Skippable::PreRelease { .. } => {
            return Err(RdbError::Unreadable { what: "a value in a pre-release format" });
        }
    }
    Ok(())
}

/// A stream (`RDB_TYPE_STREAM_LISTPACKS`, `_2`, `_3`): its listpacks, metadata and
/// consumer groups with their pending entries.
fn stream(input: &mut Input<impl BufRead>, layout: u8) -> Result<(), RdbError> {
    let listpacks = input.plain_length("a stream listpack count")?;
    for _ in 0..listpacks {
        input.string("a stream node key")?;
        input.string("a stream listpack")?;
    }
    // Length and last id; layout 2 adds first id, max deleted id and entries added.
    let fields = if layout >= 2 { 8 } else { 3 };
    for _ in 0..fields {
        input.plain_length("a stream field")?;
    }
    let groups = input.plain_length("a consumer group count")?;
    for _ in 0..groups {
        input.string("a consumer group name")?;
        input.plain_length("a consumer group last id")?;
        input.plain_length("a consumer group last id")?;
        if layout >= 2 {
            input.plain_length("a consumer group entries read")?;
        }
        let pending = input.plain_length("a pending entry count")?;
        for _ in 0..pending {
            // Raw 128-bit id, delivery time in ms, delivery count.
            input.array::<16>("a pending entry id")?;
            input.array::<8>("a delivery time")?;
            input.plain_length("a delivery count")?;
        }
        let consumers = input.plain_length("a consumer count")?;
        for _ in 0..consumers {
            input.string("a consumer name")?;
            input.array::<8>("a consumer seen time")?;
            if layout >= 3 {
                input.array::<8>("a consumer active time")?;
            }
            let owned = input.plain_length("a consumer's pending count")?;
            for _ in 0..owned {
                input.array::<16>("a consumer's pending id")?;
            }
        }
    }
    Ok(())
}

/// `RDB_OPCODE_MODULE_AUX`: module id, a "when" opcode and value, then the module's data.
/// Returns the module's nine-character name (decoded from its id) for messages.
pub(super) fn module_aux(input: &mut Input<impl BufRead>) -> Result<String, RdbError> {
    let id = input.plain_length("a module id")?;
    input.plain_length("a module aux 'when' opcode")?;
    input.plain_length("a module aux 'when' value")?;
    module_opcodes(input)?;
    Ok(module_name(id))
}

/// Module data as `RedisModule_Save*` writes it: typed fields until the module EOF opcode.
fn module_opcodes(input: &mut Input<impl BufRead>) -> Result<(), RdbError> {
    loop {
        match input.plain_length("a module data opcode")? {
            0 => return Ok(()),
            1 | 2 => drop(input.plain_length("a module integer")?),
            3 => drop(input.array::<4>("a module float")?),
            4 => drop(input.array::<8>("a module double")?),
            5 => drop(input.string("a module string")?),
            other => return Err(input.corrupt(format!("unknown module data opcode {other}"))),
        }
    }
}

/// `moduleTypeNameByID`: the top 54 bits of the id are nine 6-bit characters.
fn module_name(id: u64) -> String {
    const CHARSET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..9).map(|j| char::from(CHARSET[((id >> (10 + 6 * (8 - j))) & 63) as usize])).collect()
}
