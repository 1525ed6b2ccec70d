//! Keyspace commands: DEL, UNLINK, EXISTS, TYPE, the EXPIRE family, TTL, PTTL, PERSIST,
//! SCAN, KEYS, RANDOMKEY.

use super::connection::database_number;
use super::expiry::{Base, ExpireArg, Unit};
use super::scan::{ScanArgs, reply_scan};
use super::{Args, CommandError, Ctx};
use crate::engine::{CompactBytes, ExpireCondition, INLINE_LEN, Ttl, Value};
use crate::server::lazyfree;

fn count_reply(ctx: &mut Ctx<'_, '_>, count: usize) {
    ctx.out.integer(i64::try_from(count).unwrap_or(i64::MAX));
}

/// DEL: a removed value is freed here, after its shard was released.
pub(crate) fn del(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    remove_keys(ctx, args, drop)
}

/// UNLINK: a removed collection is freed in the background (`lazyfree.rs`).
pub(crate) fn unlink(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    remove_keys(ctx, args, lazyfree::free)
}

fn remove_keys(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>, free: fn(Value)) -> Result<(), CommandError> {
    let mut deleted = 0;
    for key in args.rest() {
        let removed = ctx.logged(key, |store| {
            let removed = store.remove(key);
            let existed = removed.is_some();
            (removed, existed)
        });
        if let Some(value) = removed {
            deleted += 1;
            free(value);
        }
    }
    count_reply(ctx, deleted);
    Ok(())
}

/// OBJECT ENCODING | REFCOUNT | HELP. IDLETIME and FREQ need per-key access tracking, which
/// cstore does not keep; they are refused by name.
pub(crate) fn object(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let subcommand = args.bytes()?;
    let upper = subcommand.to_ascii_uppercase();
    let wrong_arity = || {
        CommandError::Other(format!(
            "ERR wrong number of arguments for 'object|{}' command",
            String::from_utf8_lossy(subcommand).to_ascii_lowercase()
        ))
    };
    match upper.as_slice() {
        b"HELP" if args.is_empty() => {
            let lines = [
                "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ENCODING <key>",
                "    Return the kind of internal representation used in order to store the value",
                "    associated with a <key>.",
                "REFCOUNT <key>",
                "    Return the number of references of the value associated with the specified",
                "    <key>.",
                "HELP",
                "    Print this help.",
            ];
            ctx.out.array(lines.len());
            lines.iter().for_each(|line| ctx.out.simple(line));
        }
        b"ENCODING" | b"REFCOUNT" if args.remaining() == 1 => {
            let key = args.bytes()?;
            match ctx.db().encoding(key) {
                None => ctx.out.null(),
                Some(encoding) if upper == b"ENCODING" => ctx.out.bulk(encoding.as_bytes()),
                // A value has one owner, the store (readers' clones are not counted).
                Some(_) => ctx.out.integer(1),
            }
        }
        b"IDLETIME" | b"FREQ" if args.remaining() == 1 => {
            return Err(CommandError::Other(format!(
                "ERR OBJECT {} is not supported: cstore does not track key access",
                String::from_utf8_lossy(&upper)
            )));
        }
        b"HELP" | b"ENCODING" | b"REFCOUNT" | b"IDLETIME" | b"FREQ" => return Err(wrong_arity()),
        _ => {
            return Err(CommandError::Other(format!(
                "ERR unknown subcommand '{}'. Try OBJECT HELP.",
                String::from_utf8_lossy(subcommand)
            )));
        }
    }
    Ok(())
}

pub(crate) fn exists(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    // A key named twice counts twice, as in Redis.
    let found = args.rest().iter().filter(|key| ctx.db().exists(key)).count();
    count_reply(ctx, found);
    Ok(())
}

pub(crate) fn type_of(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let kind = ctx.db().value_type(args.bytes()?);
    ctx.out.simple(kind.map_or("none", |kind| kind.name()));
    Ok(())
}

/// Reads EXPIRE's NX / XX / GT / LT flags with Redis's compatibility rules.
fn expire_condition(args: &mut Args<'_>) -> Result<ExpireCondition, CommandError> {
    let mut condition = ExpireCondition::default();
    while !args.is_empty() {
        let option = args.bytes()?;
        let flag = match option.to_ascii_uppercase().as_slice() {
            b"NX" => &mut condition.nx,
            b"XX" => &mut condition.xx,
            b"GT" => &mut condition.gt,
            b"LT" => &mut condition.lt,
            _ => {
                return Err(CommandError::Other(format!("ERR Unsupported option {}", String::from_utf8_lossy(option))));
            }
        };
        *flag = true;
    }
    if condition.nx && (condition.xx || condition.gt || condition.lt) {
        return Err(CommandError::Other("ERR NX and XX, GT or LT options at the same time are not compatible".into()));
    }
    if condition.gt && condition.lt {
        return Err(CommandError::Other("ERR GT and LT options at the same time are not compatible".into()));
    }
    Ok(condition)
}

fn expire_generic(
    ctx: &mut Ctx<'_, '_>,
    mut args: Args<'_>,
    unit: Unit,
    base: Base,
    command: &'static str,
) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let raw_time = args.bytes()?;
    // Redis checks the flags before the time value.
    let condition = expire_condition(&mut args)?;
    let value = crate::engine::parse_integer(raw_time).ok_or(CommandError::NotInteger)?;
    let deadline = ExpireArg { value, unit, base }.deadline(ctx.db().now_ms(), true, command)?;
    let applied = ctx.logged(key, |store| {
        let applied = store.expire_at(key, deadline, condition);
        (applied, applied)
    });
    ctx.out.integer(i64::from(applied));
    Ok(())
}

pub(crate) fn expire(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    expire_generic(ctx, args, Unit::Seconds, Base::FromNow, "expire")
}

pub(crate) fn pexpire(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    expire_generic(ctx, args, Unit::Milliseconds, Base::FromNow, "pexpire")
}

pub(crate) fn expireat(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    expire_generic(ctx, args, Unit::Seconds, Base::UnixTime, "expireat")
}

pub(crate) fn pexpireat(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    expire_generic(ctx, args, Unit::Milliseconds, Base::UnixTime, "pexpireat")
}

fn ttl_reply(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>, unit: Unit) -> Result<(), CommandError> {
    let reply = match ctx.db().ttl(args.bytes()?) {
        Ttl::Missing => -2,
        Ttl::Persistent => -1,
        Ttl::ExpiresIn(ms) => {
            let remaining = match unit {
                // Rounded to the nearest second, as Redis does.
                Unit::Seconds => ms.saturating_add(500) / 1000,
                Unit::Milliseconds => ms,
            };
            i64::try_from(remaining).unwrap_or(i64::MAX)
        }
    };
    ctx.out.integer(reply);
    Ok(())
}

pub(crate) fn ttl(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    ttl_reply(ctx, args, Unit::Seconds)
}

pub(crate) fn pttl(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    ttl_reply(ctx, args, Unit::Milliseconds)
}

pub(crate) fn persist(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let removed = ctx.logged(key, |store| {
        let removed = store.persist(key);
        (removed, removed)
    });
    ctx.out.integer(i64::from(removed));
    Ok(())
}

pub(crate) fn scan(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let scan = ScanArgs::parse(&mut args, true)?;
    let (next, mut keys) = ctx.db().scan(scan.cursor, scan.pattern, scan.count);
    if let Some(kind) = scan.kind {
        // As Redis, the type is checked after the walk, key by key.
        let store = ctx.db();
        keys.retain(|key| kind.is_some() && store.value_type(key) == kind);
    }
    reply_scan(ctx, next, &keys);
    Ok(())
}

/// KEYS: every matching key must be gathered before the reply's first byte (which gives
/// their number), so the list of keys counts toward the client's output limit and memory as it
/// grows, and a client whose KEYS would hold more than its limit is closed (as Redis closes
/// one whose KEYS reply reaches the limit). The reply is then streamed like MGET's, never
/// built whole.
pub(crate) fn keys(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let pattern = args.bytes()?;
    let mut keys = std::mem::take(&mut ctx.session.reply_keys);
    if ctx.session.resume_at.is_none() {
        let store = ctx.db();
        let out = &mut *ctx.out;
        let mut held = KeyListMemory::default();
        if !store.keys_while(pattern, &mut keys, |keys| out.hold(held.of(keys))) {
            // Over the limit: the connection closes the client, and the keys are dropped now.
            return Ok(());
        }
    }
    if ctx.stream_array(&keys, |ctx, key| ctx.out.bulk(key)) {
        ctx.out.hold(0);
    } else {
        ctx.session.reply_keys = keys;
    }
    Ok(())
}

/// The memory a growing list of keys holds: its slots, plus the bytes of keys too long to
/// sit in a slot (such a key is shared with the store, but outlives it in the list if it is
/// deleted meanwhile). Counts each key once as the list grows.
#[derive(Default)]
struct KeyListMemory {
    counted: usize,
    long_key_bytes: usize,
}

impl KeyListMemory {
    fn of(&mut self, keys: &Vec<CompactBytes>) -> usize {
        let new = keys.get(self.counted..).unwrap_or_default();
        self.long_key_bytes += new.iter().map(|key| key.len()).filter(|&len| len > INLINE_LEN).sum::<usize>();
        self.counted = keys.len();
        keys.capacity() * size_of::<CompactBytes>() + self.long_key_bytes
    }
}

pub(crate) fn randomkey(ctx: &mut Ctx<'_, '_>, _args: Args<'_>) -> Result<(), CommandError> {
    match ctx.db().random_key() {
        Some(key) => ctx.out.bulk(&key),
        None => ctx.out.null(),
    }
    Ok(())
}

fn rename_command(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>, only_if_absent: bool) -> Result<bool, CommandError> {
    let (from, to) = (args.bytes()?, args.bytes()?);
    let renamed = ctx.logged_together(&[from, to], |store| {
        let renamed = store.rename(from, to, only_if_absent);
        let changed = renamed == Ok(true) && from != to;
        (renamed, changed)
    })?;
    Ok(renamed)
}

pub(crate) fn rename(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    rename_command(ctx, args, false)?;
    ctx.out.ok();
    Ok(())
}

pub(crate) fn renamenx(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    let renamed = rename_command(ctx, args, true)?;
    ctx.out.integer(i64::from(renamed));
    Ok(())
}

pub(crate) fn copy(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let (from, to) = (args.bytes()?, args.bytes()?);
    let mut replace = false;
    let mut target = ctx.session.db();
    while let Some(option) = args.option() {
        match option.as_str() {
            "REPLACE" => replace = true,
            "DB" => target = database_number(ctx, &mut args)?,
            _ => return Err(CommandError::Syntax),
        }
    }
    if from == to && target == ctx.session.db() {
        return Err(CommandError::Other("ERR source and destination objects are the same".into()));
    }
    let (source, target) = (ctx.db(), ctx.state.database(target));
    let copied = ctx.logged_across(&[(target, to)], || {
        let copied = source.copy_to(from, target, to, replace);
        (copied, copied)
    });
    ctx.out.integer(i64::from(copied));
    Ok(())
}

/// MOVE: the key goes to another database, with its expiry, unless it exists there.
pub(crate) fn move_key(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let target = database_number(ctx, &mut args)?;
    if target == ctx.session.db() {
        return Err(CommandError::Other("ERR source and destination objects are the same".into()));
    }
    let (source, target) = (ctx.db(), ctx.state.database(target));
    let moved = ctx.logged_across(&[(target, key), (source, key)], || {
        let moved = source.move_to(key, target);
        (moved, moved)
    });
    ctx.out.integer(i64::from(moved));
    Ok(())
}
