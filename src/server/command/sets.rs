//! Set commands. Writes to one set are logged as the command that replays them (SADD, SREM;
//! SPOP as the SREM of what it popped, as Redis propagates it). SMOVE and the STORE forms
//! change several keys as one: they hold the store exclusively and log the keys' states
//! together. SINTER, SUNION, SDIFF and SINTERCARD read each set as one linearizable step,
//! like MGET: the command as a whole is not atomic.

use std::sync::Arc;

use super::random::{Picks, reply_picks};
use super::scan::{ScanArgs, reply_scan};
use super::{Args, CommandError, Ctx};
use crate::engine::{CompactBytes, EncodingLimits, Set};
use crate::persistence::aof::resp;
use crate::server::aof::Logged;

fn count_reply(ctx: &mut Ctx<'_, '_>, count: usize) {
    ctx.out.integer(i64::try_from(count).unwrap_or(i64::MAX));
}

/// SADD, SREM and HDEL: `op` returns how many elements it changed; logged as the command
/// itself when it changed any.
pub(super) fn change_elements(
    ctx: &mut Ctx<'_, '_>,
    mut args: Args<'_>,
    name: &'static [u8],
    op: impl FnOnce(&crate::engine::Store, &[u8], &[&[u8]]) -> Result<usize, crate::engine::StoreError>,
) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let members = args.rest();
    let mut logged: Vec<&[u8]> = vec![name, key];
    logged.extend_from_slice(members);
    let changed = ctx.logged(key, |store| match op(store, key, members) {
        Ok(0) => (Ok(0), Logged::Unchanged),
        Ok(changed) => (Ok(changed), Logged::Command(&logged)),
        Err(error) => (Err(error), Logged::Unchanged),
    })?;
    count_reply(ctx, changed);
    Ok(())
}

pub(crate) fn sadd(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    change_elements(ctx, args, b"SADD", |store, key, members| store.sadd(key, members))
}

pub(crate) fn srem(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    change_elements(ctx, args, b"SREM", |store, key, members| store.srem(key, members))
}

pub(crate) fn sismember(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let (key, member) = (args.bytes()?, args.bytes()?);
    let found = ctx.db().read_set(key, |set| set.is_some_and(|s| s.contains(member)))?;
    ctx.out.integer(i64::from(found));
    Ok(())
}

pub(crate) fn smismember(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let members = args.rest();
    let found: Vec<bool> =
        ctx.db().read_set(key, |set| members.iter().map(|m| set.is_some_and(|s| s.contains(m))).collect())?;
    ctx.out.array(found.len());
    for found in found {
        ctx.out.integer(i64::from(found));
    }
    Ok(())
}

pub(crate) fn scard(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let len = ctx.db().read_set(args.bytes()?, |set| set.map_or(0, Set::len))?;
    count_reply(ctx, len);
    Ok(())
}

/// Replies with `members` as a set (RESP3) or an array.
fn reply_members(ctx: &mut Ctx<'_, '_>, members: &[CompactBytes]) {
    ctx.out.set(members.len());
    for member in members {
        ctx.out.value(member);
    }
}

pub(crate) fn smembers(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let members = ctx.db().set_value(args.bytes()?)?.map(|set| set.members()).unwrap_or_default();
    reply_members(ctx, &members);
    Ok(())
}

pub(crate) fn spop(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let count = match args.is_empty() {
        true => None,
        false => {
            // Redis words a count that is not a number the same as a negative one.
            let positive = || CommandError::Other("ERR value is out of range, must be positive".into());
            let count = usize::try_from(args.integer().map_err(|_| positive())?).map_err(|_| positive())?;
            args.finish()?;
            Some(count)
        }
    };
    let popped = ctx.logged(key, |store| match store.spop(key, count.unwrap_or(1)) {
        Ok(popped) if popped.is_empty() => (Ok(popped), Logged::Unchanged),
        Ok(popped) => {
            let mut record = Vec::new();
            let mut logged: Vec<&[u8]> = vec![b"SREM", key];
            logged.extend(popped.iter().map(|member| &member[..]));
            resp::encode(&mut record, &logged);
            (Ok(popped), Logged::Encoded(record))
        }
        Err(error) => (Err(error), Logged::Unchanged),
    })?;
    match (count, popped.first()) {
        (Some(_), _) => reply_members(ctx, &popped),
        (None, Some(member)) => ctx.out.value(member),
        (None, None) => ctx.out.null(),
    }
    Ok(())
}

pub(crate) fn srandmember(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let count = if args.is_empty() { None } else { Some(args.integer()?) };
    args.finish()?;
    let set = ctx.db().set_value(key)?;
    let mut rng = rand::rng();
    let Some(count) = count else {
        match set.and_then(|s| s.random(&mut rng)) {
            Some(member) => ctx.out.value(&member),
            None => ctx.out.null(),
        }
        return Ok(());
    };
    let picks = Picks::parse(count)?;
    let members = set.map(|set| set.members()).unwrap_or_default();
    reply_picks(ctx, &members, picks, 1, |out, member| out.value(member));
    Ok(())
}

pub(crate) fn smove(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let (from, to, member) = (args.bytes()?, args.bytes()?, args.bytes()?);
    let moved = ctx.logged_together(&[from, to], |store| match store.smove(from, to, member) {
        Ok(moved) => (Ok(moved), moved && from != to),
        Err(error) => (Err(error), false),
    })?;
    ctx.out.integer(i64::from(moved));
    Ok(())
}

/// Which set algebra a command computes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Algebra {
    Inter,
    Union,
    Diff,
}

/// The sets under `keys`, each read as it is now (a missing key is an empty set). Every key
/// is type-checked first, as Redis does.
fn read_sets(ctx: &Ctx<'_, '_>, keys: &[&[u8]]) -> Result<Vec<Option<Arc<Set>>>, CommandError> {
    keys.iter().map(|key| ctx.db().set_value(key).map_err(CommandError::from)).collect()
}

/// The members of the result, in the order Redis's algorithm finds them: an intersection
/// walks the smallest set; a union and a difference walk the sets in order.
fn compute(sets: &[Option<Arc<Set>>], algebra: Algebra) -> Vec<CompactBytes> {
    match algebra {
        Algebra::Inter => {
            if sets.iter().any(Option::is_none) {
                return Vec::new();
            }
            let mut sets: Vec<&Arc<Set>> = sets.iter().flatten().collect();
            sets.sort_by_key(|set| set.len());
            let Some((smallest, others)) = sets.split_first() else { return Vec::new() };
            smallest.members().into_iter().filter(|m| others.iter().all(|set| set.contains(m))).collect()
        }
        Algebra::Union => {
            let mut seen = std::collections::HashSet::new();
            sets.iter().flatten().flat_map(|set| set.members()).filter(|m| seen.insert(m.clone())).collect()
        }
        Algebra::Diff => {
            let Some(Some(first)) = sets.first() else { return Vec::new() };
            let others: Vec<&Arc<Set>> = sets[1..].iter().flatten().collect();
            first.members().into_iter().filter(|m| !others.iter().any(|set| set.contains(m))).collect()
        }
    }
}

fn algebra(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>, algebra: Algebra) -> Result<(), CommandError> {
    let sets = read_sets(ctx, args.rest())?;
    reply_members(ctx, &compute(&sets, algebra));
    Ok(())
}

pub(crate) fn sinter(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    algebra(ctx, args, Algebra::Inter)
}

pub(crate) fn sunion(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    algebra(ctx, args, Algebra::Union)
}

pub(crate) fn sdiff(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    algebra(ctx, args, Algebra::Diff)
}

/// SINTERSTORE, SUNIONSTORE, SDIFFSTORE: the destination becomes the result (or goes, when it
/// is empty), as one change with the reads (the command holds the store exclusively).
fn store_algebra(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>, algebra: Algebra) -> Result<(), CommandError> {
    let destination = args.bytes()?;
    let sets = read_sets(ctx, args.rest())?;
    let limits: EncodingLimits = ctx.db().encoding_limits();
    let result = Set::from_members(compute(&sets, algebra).iter().map(|m| &m[..]), &limits);
    let len = ctx.logged_together(&[destination], |store| {
        let existed = store.exists(destination);
        let len = store.replace_with_set(destination, result);
        (len, len > 0 || existed)
    });
    count_reply(ctx, len);
    Ok(())
}

pub(crate) fn sinterstore(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    store_algebra(ctx, args, Algebra::Inter)
}

pub(crate) fn sunionstore(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    store_algebra(ctx, args, Algebra::Union)
}

pub(crate) fn sdiffstore(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    store_algebra(ctx, args, Algebra::Diff)
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit].
pub(crate) fn sintercard(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    // As in Redis, a numkeys or LIMIT that is not a number gets the range's message.
    let numkeys_error = || CommandError::Other("ERR numkeys should be greater than 0".into());
    let numkeys = args.integer().map_err(|_| numkeys_error())?;
    if numkeys <= 0 {
        return Err(numkeys_error());
    }
    let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
    if numkeys > args.remaining() {
        return Err(CommandError::Other("ERR Number of keys can't be greater than number of args".into()));
    }
    let rest = args.rest();
    let (keys, mut options) = rest.split_at(numkeys);
    let mut limit = 0usize;
    while let [option, tail @ ..] = options {
        match (option.eq_ignore_ascii_case(b"LIMIT"), tail) {
            (true, [value, tail @ ..]) => {
                let negative = || CommandError::Other("ERR LIMIT can't be negative".into());
                let value = crate::engine::parse_integer(value).ok_or_else(negative)?;
                limit = usize::try_from(value).map_err(|_| negative())?;
                options = tail;
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    let sets = read_sets(ctx, keys)?;
    let mut cardinality = compute(&sets, Algebra::Inter).len();
    if limit > 0 {
        cardinality = cardinality.min(limit);
    }
    count_reply(ctx, cardinality);
    Ok(())
}

/// SSCAN: the cursor, the key, then the options, as HSCAN (`hashes.rs`).
pub(crate) fn sscan(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let key = args.bytes()?;
    let cursor = ScanArgs::cursor(&mut args)?;
    let Some(set) = ctx.db().set_value(key)? else {
        reply_scan::<&[u8]>(ctx, 0, &[]);
        return Ok(());
    };
    let scan = ScanArgs::options(cursor, &mut args, false)?;
    let mut items: Vec<Vec<u8>> = Vec::new();
    let next = set.scan(scan.cursor, scan.count, |member| {
        if scan.matches(member) {
            items.push(member.to_vec());
        }
    });
    reply_scan(ctx, next, &items);
    Ok(())
}
