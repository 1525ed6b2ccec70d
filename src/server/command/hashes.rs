//! Hash commands. A write is logged as the command that replays it (HSET, HDEL), never as
//! the whole hash: a change of one field of a large hash costs the log one field.

use super::random::{Picks, reply_picks};
use super::scan::{ScanArgs, reply_scan};
use super::sets::change_elements;
use super::{Args, CommandError, Ctx};
use crate::engine::{CompactBytes, Hash, StoreError};
use crate::persistence::aof::resp;
use crate::server::aof::Logged;
use crate::server::reply::Protocol;

fn count_reply(ctx: &mut Ctx<'_, '_>, count: usize) {
    ctx.out.integer(i64::try_from(count).unwrap_or(i64::MAX));
}

/// A field and its value.
type Pair<'a> = (&'a [u8], &'a [u8]);

/// The field-value pairs of HSET and HMSET.
fn field_pairs<'a>(args: &mut Args<'a>, command: &'static str) -> Result<Vec<Pair<'a>>, CommandError> {
    let rest = args.rest();
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity(command));
    }
    Ok(rest.chunks_exact(2).map(|pair| (pair[0], pair[1])).collect())
}

/// Sets the pairs, logged as the HSET that replays them; returns how many fields are new.
fn set_pairs(ctx: &mut Ctx<'_, '_>, key: &[u8], pairs: &[(&[u8], &[u8])]) -> Result<usize, CommandError> {
    let mut logged: Vec<&[u8]> = vec![b"HSET", key];
    logged.extend(pairs.iter().flat_map(|&(field, value)| [field, value]));
    let added = ctx.logged(key, |store| match store.hset(key, pairs) {
        Ok(added) => (Ok(added), Logged::Command(&logged)),
        Err(error) => (Err(error), Logged::Unchanged),
    })?;
    Ok(added)
}

pub(crate) fn hset(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let pairs = field_pairs(&mut args, "hset")?;
    let added = set_pairs(ctx, key, &pairs)?;
    count_reply(ctx, added);
    Ok(())
}

pub(crate) fn hmset(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let pairs = field_pairs(&mut args, "hmset")?;
    set_pairs(ctx, key, &pairs)?;
    ctx.out.ok();
    Ok(())
}

pub(crate) fn hsetnx(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let (key, field, value) = (args.bytes()?, args.bytes()?, args.bytes()?);
    let logged: [&[u8]; 4] = [b"HSET", key, field, value];
    let set = ctx.logged(key, |store| match store.hsetnx(key, field, value) {
        Ok(true) => (Ok(true), Logged::Command(&logged)),
        other => (other, Logged::Unchanged),
    })?;
    ctx.out.integer(i64::from(set));
    Ok(())
}

pub(crate) fn hget(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let (key, field) = (args.bytes()?, args.bytes()?);
    let value = ctx.db().read_hash(key, |hash| hash.and_then(|h| h.get(field)).cloned())?;
    match value {
        Some(value) => ctx.out.value(&value),
        None => ctx.out.null(),
    }
    Ok(())
}

pub(crate) fn hmget(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let fields = args.rest();
    let values: Vec<Option<CompactBytes>> = ctx
        .db()
        .read_hash(key, |hash| fields.iter().map(|field| hash.and_then(|h| h.get(field)).cloned()).collect())?;
    ctx.out.array(values.len());
    for value in &values {
        match value {
            Some(value) => ctx.out.value(value),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

pub(crate) fn hdel(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    change_elements(ctx, args, b"HDEL", |store, key, fields| store.hdel(key, fields))
}

/// Replies with what `f` reads of the hash under the command's key (no hash: `None`).
fn read_count(ctx: &mut Ctx<'_, '_>, key: &[u8], f: impl FnOnce(Option<&Hash>) -> usize) -> Result<(), CommandError> {
    let count = ctx.db().read_hash(key, f)?;
    count_reply(ctx, count);
    Ok(())
}

pub(crate) fn hexists(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let (key, field) = (args.bytes()?, args.bytes()?);
    read_count(ctx, key, |hash| usize::from(hash.is_some_and(|h| h.get(field).is_some())))
}

pub(crate) fn hlen(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    read_count(ctx, args.bytes()?, |hash| hash.map_or(0, Hash::len))
}

pub(crate) fn hstrlen(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let (key, field) = (args.bytes()?, args.bytes()?);
    read_count(ctx, key, |hash| hash.and_then(|h| h.get(field)).map_or(0, |value| value.len()))
}

/// What HKEYS, HVALS and HGETALL reply with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Fields,
    Values,
    Both,
}

/// Replies with a version of the whole hash, read with no lock held. Written whole, as Redis
/// writes it, under the client's output limits.
fn reply_whole(ctx: &mut Ctx<'_, '_>, key: &[u8], part: Part) -> Result<(), CommandError> {
    let pairs = ctx.db().hash(key)?.map(|hash| hash.pairs()).unwrap_or_default();
    match part {
        Part::Both => ctx.out.map(pairs.len()),
        _ => ctx.out.array(pairs.len()),
    }
    for (field, value) in &pairs {
        if part != Part::Values {
            ctx.out.value(field);
        }
        if part != Part::Fields {
            ctx.out.value(value);
        }
    }
    Ok(())
}

pub(crate) fn hkeys(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    reply_whole(ctx, args.bytes()?, Part::Fields)
}

pub(crate) fn hvals(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    reply_whole(ctx, args.bytes()?, Part::Values)
}

pub(crate) fn hgetall(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    reply_whole(ctx, args.bytes()?, Part::Both)
}

/// Logs a counter's change as the HSET of its new value (what replaying it must leave).
fn log_new_value<R>(
    ctx: &mut Ctx<'_, '_>,
    key: &[u8],
    field: &[u8],
    op: impl FnOnce(&crate::engine::Store) -> Result<(R, CompactBytes), StoreError>,
) -> Result<R, CommandError> {
    let result = ctx.logged(key, |store| match op(store) {
        Ok((reply, value)) => {
            let mut record = Vec::new();
            resp::encode(&mut record, &[b"HSET", key, field, &value]);
            (Ok(reply), Logged::Encoded(record))
        }
        Err(error) => (Err(error), Logged::Unchanged),
    })?;
    Ok(result)
}

pub(crate) fn hincrby(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let (key, field, delta) = (args.bytes()?, args.bytes()?, args.integer()?);
    let next = log_new_value(ctx, key, field, |store| {
        let next = store.hincr_by(key, field, delta)?;
        Ok((next, CompactBytes::from(itoa::Buffer::new().format(next))))
    })?;
    ctx.out.integer(next);
    Ok(())
}

pub(crate) fn hincrbyfloat(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let (key, field, increment) = (args.bytes()?, args.bytes()?, args.float()?);
    // Redis 7 refuses an infinite increment before looking at the field.
    if !increment.value().is_finite() {
        return Err(CommandError::Other("ERR value is NaN or Infinity".into()));
    }
    let text = log_new_value(ctx, key, field, |store| {
        let text = store.hincr_by_float(key, field, increment)?;
        Ok((text.clone(), text))
    })?;
    ctx.out.value(&text);
    Ok(())
}

pub(crate) fn hrandfield(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let count = if args.is_empty() { None } else { Some(args.integer()?) };
    let with_values = match args.option() {
        None => false,
        Some(option) if option.as_str() == "WITHVALUES" && count.is_some() && args.is_empty() => true,
        Some(_) => return Err(CommandError::Syntax),
    };
    let hash = ctx.db().hash(key)?;
    let mut rng = rand::rng();
    let Some(count) = count else {
        match hash.as_deref().and_then(|h| h.random(&mut rng)) {
            Some((field, _)) => ctx.out.value(field),
            None => ctx.out.null(),
        }
        return Ok(());
    };
    let picks = Picks::parse(count)?;
    let pairs = hash.map(|hash| hash.pairs()).unwrap_or_default();
    // RESP3 gives each field and value as a pair; RESP2 flattens them.
    let resp3 = ctx.out.protocol() == Protocol::Resp3;
    let elements = if with_values && !resp3 { 2 } else { 1 };
    reply_picks(ctx, &pairs, picks, elements, |out, (field, value)| {
        if with_values && resp3 {
            out.array(2);
        }
        out.value(field);
        if with_values {
            out.value(value);
        }
    });
    Ok(())
}

/// HSCAN: as Redis's, the cursor is read, then the key (a missing one answers an empty scan
/// whatever follows, another type WRONGTYPE), then the options.
pub(crate) fn hscan(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let cursor = ScanArgs::cursor(&mut args)?;
    let Some(hash) = ctx.db().hash(key)? else {
        reply_scan::<&[u8]>(ctx, 0, &[]);
        return Ok(());
    };
    let scan = ScanArgs::options(cursor, &mut args, false)?;
    let mut items = Vec::new();
    let next = hash.scan(scan.cursor, scan.count, |field, value| {
        if scan.matches(field) {
            items.push(field.clone());
            items.push(value.clone());
        }
    });
    reply_scan(ctx, next, &items);
    Ok(())
}
