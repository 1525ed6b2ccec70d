//! String commands: GET, SET and its variants, MGET, MSET, counters, APPEND, ranges.

use super::expiry::{Base, ExpireArg, Unit};
use super::{Args, CommandError, Ctx};
use crate::engine::{CompactBytes, SetCondition, SetExpiry, SetOptions, StoreError, TtlUpdate, ValueType};
use crate::server::aof::Logged;

fn reply_value(ctx: &mut Ctx<'_, '_>, value: Option<CompactBytes>) {
    match value {
        Some(value) => ctx.out.value(&value),
        None => ctx.out.null(),
    }
}

/// What a SET that stored `value` with `expiry` leaves under its key, for the AOF.
fn stored(value: &[u8], expiry: SetExpiry) -> Logged<'_> {
    match expiry {
        SetExpiry::Clear => Logged::Stored { value, deadline: None },
        SetExpiry::At(deadline) => Logged::Stored { value, deadline: Some(deadline) },
        // The deadline kept is the store's to tell.
        SetExpiry::Keep => Logged::Changed,
    }
}

/// Values up to this size are copied into the reply while their shard is read; larger ones
/// are taken by reference and copied after, so a writer never waits for a long copy.
const COPY_UNDER_READ_MAX: usize = 16 * 1024;

/// Replies with the string under `key`, or null; WRONGTYPE for another type.
fn reply_get(ctx: &mut Ctx<'_, '_>, key: &[u8]) -> Result<(), CommandError> {
    let store = ctx.db();
    let out = &mut *ctx.out;
    let large = store.get_with(key, |value| match value {
        Some(value) if value.len() > COPY_UNDER_READ_MAX => Some(value.clone()),
        Some(value) => {
            out.bulk(value);
            None
        }
        None => {
            out.null();
            None
        }
    })?;
    if let Some(value) = large {
        out.value(&value);
    }
    Ok(())
}

pub(crate) fn get(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    reply_get(ctx, args.bytes()?)
}

/// Which command's options are being read: SET and GETEX share one grammar, as in Redis.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Grammar {
    Set,
    GetEx,
}

/// SET / GETEX options as given, before the expiry value is checked.
#[derive(Default)]
struct Options<'a> {
    condition: SetCondition,
    get: bool,
    keep_ttl: bool,
    persist: bool,
    expire: Option<(Unit, Base, &'a [u8])>,
}

impl Options<'_> {
    /// The expiry as an absolute deadline, checked with Redis's rules for `command`.
    fn deadline(&self, ctx: &Ctx<'_, '_>, command: &'static str) -> Result<Option<u64>, CommandError> {
        let Some((unit, base, raw)) = self.expire else { return Ok(None) };
        let value = crate::engine::parse_integer(raw).ok_or(CommandError::NotInteger)?;
        ExpireArg { value, unit, base }.deadline(ctx.db().now_ms(), false, command).map(Some)
    }
}

/// Reads the options of SET or GETEX. Conflicts (NX with XX, an expiry with KEEPTTL or
/// PERSIST, two kinds of expiry) and options of the other command are syntax errors; the
/// same kind of expiry given twice keeps the last, as in Redis.
fn parse_options<'a>(args: &mut Args<'a>, grammar: Grammar) -> Result<Options<'a>, CommandError> {
    let mut o = Options::default();
    let set = grammar == Grammar::Set;
    while let Some(option) = args.option() {
        let no_expiry = o.expire.is_none();
        match option.as_str() {
            "NX" if set && o.condition != SetCondition::IfPresent => o.condition = SetCondition::IfAbsent,
            "XX" if set && o.condition != SetCondition::IfAbsent => o.condition = SetCondition::IfPresent,
            "GET" if set => o.get = true,
            "KEEPTTL" if set && no_expiry => o.keep_ttl = true,
            "PERSIST" if !set && no_expiry => o.persist = true,
            name => {
                let (unit, base) = match name {
                    "EX" => (Unit::Seconds, Base::FromNow),
                    "PX" => (Unit::Milliseconds, Base::FromNow),
                    "EXAT" => (Unit::Seconds, Base::UnixTime),
                    "PXAT" => (Unit::Milliseconds, Base::UnixTime),
                    _ => return Err(CommandError::Syntax),
                };
                let same_kind = o.expire.is_none_or(|(u, b, _)| (u, b) == (unit, base));
                if o.keep_ttl || o.persist || !same_kind || args.is_empty() {
                    return Err(CommandError::Syntax);
                }
                o.expire = Some((unit, base, args.bytes()?));
            }
        }
    }
    Ok(o)
}

pub(crate) fn set(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let (key, value) = (args.bytes()?, args.bytes()?);
    let parsed = parse_options(&mut args, Grammar::Set)?;
    let expiry = match parsed.deadline(ctx, "set")? {
        Some(deadline) => SetExpiry::At(deadline),
        None if parsed.keep_ttl => SetExpiry::Keep,
        None => SetExpiry::Clear,
    };
    let options = SetOptions { condition: parsed.condition, expiry, return_previous: parsed.get };
    let outcome = ctx.logged(key, |store| match store.set(key, value, options) {
        Ok(outcome) if outcome.written => (Ok(outcome), stored(value, expiry)),
        unchanged => (unchanged, Logged::Unchanged),
    })?;
    if options.return_previous {
        reply_value(ctx, outcome.previous);
    } else if outcome.written {
        ctx.out.ok();
    } else {
        ctx.out.null();
    }
    Ok(())
}

pub(crate) fn setnx(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let (key, value) = (args.bytes()?, args.bytes()?);
    let options = SetOptions { condition: SetCondition::IfAbsent, ..SetOptions::default() };
    let written = ctx.logged(key, |store| {
        let written = store.set(key, value, options).is_ok_and(|outcome| outcome.written);
        (written, written)
    });
    ctx.out.integer(i64::from(written));
    Ok(())
}

fn set_with_expiry(
    ctx: &mut Ctx<'_, '_>,
    mut args: Args<'_>,
    unit: Unit,
    command: &'static str,
) -> Result<(), CommandError> {
    let (key, value) = (args.bytes()?, args.integer()?);
    let payload = args.bytes()?;
    let deadline = ExpireArg { value, unit, base: Base::FromNow }.deadline(ctx.db().now_ms(), false, command)?;
    let options = SetOptions { expiry: SetExpiry::At(deadline), ..SetOptions::default() };
    ctx.logged(key, |store| (store.set(key, payload, options), stored(payload, options.expiry)))?;
    ctx.out.ok();
    Ok(())
}

pub(crate) fn setex(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    set_with_expiry(ctx, args, Unit::Seconds, "setex")
}

pub(crate) fn psetex(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    set_with_expiry(ctx, args, Unit::Milliseconds, "psetex")
}

pub(crate) fn getset(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let (key, value) = (args.bytes()?, args.bytes()?);
    let options = SetOptions { return_previous: true, ..SetOptions::default() };
    let previous = ctx.logged(key, |store| match store.set(key, value, options) {
        Ok(outcome) => (Ok(outcome.previous), stored(value, options.expiry)),
        Err(error) => (Err(error), Logged::Unchanged),
    })?;
    reply_value(ctx, previous);
    Ok(())
}

pub(crate) fn getdel(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let value = ctx.logged(key, |store| {
        let value = store.getdel(key);
        let deleted = matches!(value, Ok(Some(_)));
        (value, deleted)
    })?;
    reply_value(ctx, value);
    Ok(())
}

pub(crate) fn getex(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let parsed = parse_options(&mut args, Grammar::GetEx)?;
    let update = match parsed.deadline(ctx, "getex")? {
        Some(deadline) => TtlUpdate::At(deadline),
        None if parsed.persist => TtlUpdate::Persist,
        None => TtlUpdate::Keep,
    };
    let value = ctx.logged(key, |store| {
        let value = store.getex(key, update);
        let changed = matches!(value, Ok(Some(_))) && update != TtlUpdate::Keep;
        (value, changed)
    })?;
    reply_value(ctx, value);
    Ok(())
}

/// MGET names up to max-args keys of up to 512 MiB each, far more than memory holds: the
/// reply is streamed.
pub(crate) fn mget(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    // A key of another type reads as null here, as in Redis.
    ctx.stream_array(args.rest(), |ctx, key| {
        if reply_get(ctx, key).is_err() {
            ctx.out.null();
        }
    });
    Ok(())
}

pub(crate) fn mset(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let pairs = args.rest();
    if !pairs.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity("mset"));
    }
    // The command holds the store exclusively (`Flags::EXCLUSIVE`), so no client sees part
    // of it, and the AOF logs it whole between MULTI and EXEC.
    let keys: Vec<&[u8]> = pairs.chunks_exact(2).map(|pair| pair[0]).collect();
    ctx.logged_together(&keys, |store| {
        for pair in pairs.chunks_exact(2) {
            store.put(pair[0], pair[1].into(), SetOptions::default());
        }
        ((), true)
    });
    ctx.out.ok();
    Ok(())
}

pub(crate) fn msetnx(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let pairs = args.rest();
    if !pairs.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity("msetnx"));
    }
    let pairs: Vec<(&[u8], &[u8])> = pairs.chunks_exact(2).map(|pair| (pair[0], pair[1])).collect();
    let keys: Vec<&[u8]> = pairs.iter().map(|&(key, _)| key).collect();
    let stored = ctx.logged_together(&keys, |store| {
        let stored = store.set_all_if_none_exist(&pairs);
        (stored, stored)
    });
    ctx.out.integer(i64::from(stored));
    Ok(())
}

fn increment(ctx: &mut Ctx<'_, '_>, key: &[u8], delta: i64) -> Result<(), CommandError> {
    let value = ctx.logged(key, |store| {
        let value = store.incr_by(key, delta);
        let changed = value.is_ok();
        (value, changed)
    })?;
    ctx.out.integer(value);
    Ok(())
}

pub(crate) fn incr(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    increment(ctx, args.bytes()?, 1)
}

pub(crate) fn decr(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    increment(ctx, args.bytes()?, -1)
}

pub(crate) fn incrby(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    increment(ctx, key, args.integer()?)
}

pub(crate) fn decrby(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let delta = args.integer()?;
    // Negating i64::MIN overflows; Redis words this case on its own.
    let negated = delta.checked_neg().ok_or_else(|| CommandError::Other("ERR decrement would overflow".into()))?;
    increment(ctx, key, negated)
}

pub(crate) fn incrbyfloat(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let delta = args.float().map_err(|not_a_float| {
        // Redis checks the key's type before it parses the increment (unlike INCRBY's).
        match ctx.db().value_type(key) {
            Some(kind) if kind != ValueType::String => CommandError::Store(StoreError::WrongType),
            _ => not_a_float,
        }
    })?;
    let value = ctx.logged(key, |store| {
        let value = store.incr_by_float(key, delta);
        let changed = value.is_ok();
        (value, changed)
    })?;
    ctx.out.bulk(&value);
    Ok(())
}

pub(crate) fn append(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let (key, suffix) = (args.bytes()?, args.bytes()?);
    let len = ctx.logged(key, |store| {
        let len = store.append(key, suffix);
        let changed = len.is_ok();
        (len, changed)
    })?;
    ctx.out.integer(i64::try_from(len).unwrap_or(i64::MAX));
    Ok(())
}

pub(crate) fn strlen(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let len = ctx.db().strlen(args.bytes()?)?;
    ctx.out.integer(i64::try_from(len).unwrap_or(i64::MAX));
    Ok(())
}

pub(crate) fn getrange(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let (start, end) = (args.integer()?, args.integer()?);
    let range = ctx.db().getrange(key, start, end)?;
    ctx.out.bulk(&range);
    Ok(())
}

pub(crate) fn setrange(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let offset = args.integer()?;
    let patch = args.bytes()?;
    let offset = usize::try_from(offset).map_err(|_| CommandError::Other("ERR offset is out of range".into()))?;
    let len = ctx.logged(key, |store| {
        let len = store.setrange(key, offset, patch);
        let changed = len.is_ok() && !patch.is_empty();
        (len, changed)
    })?;
    ctx.out.integer(i64::try_from(len).unwrap_or(i64::MAX));
    Ok(())
}
