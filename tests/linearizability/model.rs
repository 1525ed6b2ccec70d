//! The sequential specification of one key and the store's clock: the single-key commands the
//! history driver issues, what each replies, and what each does to the key, following the
//! Redis semantics `src/engine/ops.rs` implements, with expiry.
//!
//! **Time.** The store's clock is a [`ManualClock`](cstore::engine::ManualClock) that the
//! histories move: a clock move is an operation of the history, in every key's sub-history
//! (the key and the clock are the object checked), and deadlines lie a few milliseconds
//! ahead, so keys really expire while commands race. A command reads the clock once, some time
//! after it was invoked and before it takes effect (Redis caches its time per command the same
//! way), so the model lets it take effect at any clock value the clock held from its
//! invocation (`since`, read by the driver just before the call) to the instant it takes
//! effect: [`KeySpec::apply`] returns every outcome those readings give. A command that finds
//! the key expired removes it, as the store's lazy expiry does.

use cstore::engine::{
    CompactBytes, SetCondition, SetExpiry, SetOptions, SetOutcome, Store, StoreError, Ttl, TtlUpdate,
};
use cstore::engine::{Float, parse_integer};

use std::collections::{BTreeMap, BTreeSet};

use super::checker::SequentialSpec;

/// "No deadline", as the engine stores it.
const NEVER: u64 = u64::MAX;

/// A single-key command, with the arguments that change its meaning. Deadlines are absolute
/// (milliseconds on the store's clock), as the server computes them from EX, PX, EXAT and
/// PXAT before it calls the engine.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Get,
    /// SET with NX / XX / neither, optionally GET (return the previous value), and KEEPTTL,
    /// a deadline (EX, PX, EXAT, PXAT) or neither.
    Set {
        value: CompactBytes,
        condition: SetCondition,
        return_previous: bool,
        expiry: SetExpiry,
    },
    Delete,
    Incr,
    IncrByFloat {
        increment: f64,
    },
    /// EXPIREAT at `deadline`, plain or NX (only if the key has no TTL).
    Expire {
        deadline: u64,
        only_if_no_ttl: bool,
    },
    Ttl,
    GetDel,
    GetEx {
        update: TtlUpdate,
    },
    Append {
        suffix: CompactBytes,
    },
    SetRange {
        offset: usize,
        patch: CompactBytes,
    },
    Persist,
    HSet {
        field: CompactBytes,
        value: CompactBytes,
    },
    HDel {
        field: CompactBytes,
    },
    HGet {
        field: CompactBytes,
    },
    HLen,
    HIncrBy {
        field: CompactBytes,
    },
    SAdd {
        member: CompactBytes,
    },
    SRem {
        member: CompactBytes,
    },
    SIsMember {
        member: CompactBytes,
    },
    SCard,
    /// SPOP of one member: which one is the store's choice, so the model allows each.
    SPop,
    /// Moves the store's clock forward.
    Advance {
        ms: u64,
    },
}

/// A command with the clock's reading just before it was invoked.
#[derive(Clone, Debug, PartialEq)]
pub struct Timed {
    pub since: u64,
    pub command: Command,
}

/// What a command returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Value(Result<Option<CompactBytes>, StoreError>),
    Set(Result<SetOutcome, StoreError>),
    Flag(bool),
    Integer(Result<i64, StoreError>),
    Float(Result<CompactBytes, StoreError>),
    Length(Result<usize, StoreError>),
    Ttl(Ttl),
    Advanced,
}

/// A key's value: a string, a hash or a set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Val {
    Str(CompactBytes),
    Hash(BTreeMap<CompactBytes, CompactBytes>),
    Set(BTreeSet<CompactBytes>),
}

/// A key's value and its deadline ([`NEVER`] for none).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Stored {
    pub value: Val,
    pub deadline: u64,
}

/// The state of one key and of the clock.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyState {
    pub stored: Option<Stored>,
    /// Every reading the clock has had so far, in order: the last is the current one.
    pub clock: Vec<u64>,
}

impl KeyState {
    /// An absent key, the clock at `now`.
    pub fn absent(now: u64) -> Self {
        KeyState { stored: None, clock: vec![now] }
    }
}

/// The sequential specification of one key.
pub struct KeySpec;

/// What a command does to the live entry: keep it, store this, or remove the key.
enum Write {
    Keep,
    Put(Stored),
    Remove,
}

impl SequentialSpec for KeySpec {
    type State = KeyState;
    type Op = Timed;
    type Output = Reply;

    fn apply(state: &KeyState, timed: &Timed) -> Vec<(KeyState, Reply)> {
        if let Command::Advance { ms } = timed.command {
            let mut next = state.clone();
            next.clock.push(state.clock.last().copied().unwrap_or(0) + ms);
            return vec![(next, Reply::Advanced)];
        }
        let mut readings = state.clock.iter().copied().filter(|&now| now >= timed.since).collect::<Vec<_>>();
        readings.dedup();
        readings
            .into_iter()
            .flat_map(|now| {
                outcomes(state.stored.as_ref(), &timed.command, now)
                    .into_iter()
                    .map(|(stored, reply)| (KeyState { stored, clock: state.clock.clone() }, reply))
            })
            .collect()
    }
}

/// Every outcome of `command` at clock reading `now`: one, except for SPOP, which may pop any
/// member.
fn outcomes(stored: Option<&Stored>, command: &Command, now: u64) -> Vec<(Option<Stored>, Reply)> {
    let live = stored.filter(|entry| !(entry.deadline != NEVER && now > entry.deadline));
    match (command, live.map(|entry| &entry.value)) {
        (Command::SPop, Some(Val::Set(members))) => members
            .iter()
            .map(|member| {
                let mut rest = members.clone();
                rest.remove(member);
                let deadline = live.map_or(NEVER, |entry| entry.deadline);
                let next = (!rest.is_empty()).then(|| Stored { value: Val::Set(rest), deadline });
                (next, Reply::Value(Ok(Some(member.clone()))))
            })
            .collect(),
        _ => vec![step(stored, command, now)],
    }
}

/// `command` at clock reading `now`, as the engine's write rule applies it (`kinds.rs`): on
/// the live entry only, an expired one removed whatever the command decides, and an entry
/// stored already expired not stored at all.
pub fn step(stored: Option<&Stored>, command: &Command, now: u64) -> (Option<Stored>, Reply) {
    let expired = |entry: &Stored| entry.deadline != NEVER && now > entry.deadline;
    let live = stored.filter(|entry| !expired(entry));
    let (write, reply) = decide(live, command, now);
    let next = match write {
        Write::Keep => live.cloned(),
        Write::Put(entry) if expired(&entry) => None,
        Write::Put(entry) => Some(entry),
        Write::Remove => None,
    };
    (next, reply)
}

/// The live string, `None` for no key, WRONGTYPE for a hash or a set.
fn string(live: Option<&Stored>) -> Result<Option<CompactBytes>, StoreError> {
    match live.map(|entry| &entry.value) {
        None => Ok(None),
        Some(Val::Str(text)) => Ok(Some(text.clone())),
        Some(_) => Err(StoreError::WrongType),
    }
}

fn decide(live: Option<&Stored>, command: &Command, now: u64) -> (Write, Reply) {
    let deadline = live.map_or(NEVER, |entry| entry.deadline);
    if let Some(decided) = collection_command(live, command, deadline) {
        return decided;
    }
    let value = match string(live) {
        Ok(value) => value,
        Err(error) => return type_agnostic(live, command, now).unwrap_or_else(|| refused(command, error)),
    };
    let put = |value: CompactBytes, deadline: u64| Write::Put(Stored { value: Val::Str(value), deadline });
    match command {
        Command::Get => (Write::Keep, Reply::Value(Ok(value))),
        Command::Set { value: new, condition, return_previous, expiry } => {
            let previous = if *return_previous { value } else { None };
            let allowed = match condition {
                SetCondition::Always => true,
                SetCondition::IfAbsent => live.is_none(),
                SetCondition::IfPresent => live.is_some(),
            };
            if !allowed {
                return (Write::Keep, Reply::Set(Ok(SetOutcome { written: false, previous })));
            }
            let deadline = match expiry {
                SetExpiry::Clear => NEVER,
                SetExpiry::Keep => deadline,
                // A deadline already past leaves the key absent (through the write rule).
                SetExpiry::At(at) => *at,
            };
            (put(new.clone(), deadline), Reply::Set(Ok(SetOutcome { written: true, previous })))
        }
        Command::GetDel => (Write::Remove, Reply::Value(Ok(value))),
        Command::Incr => {
            // A missing key counts as 0; the TTL survives the increment. The integer grammar
            // itself (Redis's string2ll) is unit-tested beside `parse_integer`.
            let current = match &value {
                None => 0,
                Some(value) => match parse_integer(value) {
                    Some(number) => number,
                    None => return (Write::Keep, Reply::Integer(Err(StoreError::NotAnInteger))),
                },
            };
            match current.checked_add(1) {
                Some(next) => (put(CompactBytes::from(next.to_string()), deadline), Reply::Integer(Ok(next))),
                None => (Write::Keep, Reply::Integer(Err(StoreError::Overflow))),
            }
        }
        Command::IncrByFloat { increment } => match float_sum(value.as_ref(), *increment) {
            Ok(text) => (put(text.clone(), deadline), Reply::Float(Ok(text))),
            Err(error) => (Write::Keep, Reply::Float(Err(error))),
        },
        Command::GetEx { update } => {
            let Some(entry) = live else { return (Write::Keep, Reply::Value(Ok(None))) };
            let again = |deadline| Write::Put(Stored { value: entry.value.clone(), deadline });
            let write = match update {
                TtlUpdate::Keep => Write::Keep,
                TtlUpdate::Persist => again(NEVER),
                TtlUpdate::At(at) if *at <= now => Write::Remove,
                TtlUpdate::At(at) => again(*at),
            };
            (write, Reply::Value(Ok(value)))
        }
        Command::Append { suffix } => {
            // APPEND creates a missing key (without TTL) and keeps an existing TTL.
            let value = CompactBytes::concat(&value.unwrap_or_default(), suffix);
            let length = value.len();
            (put(value, deadline), Reply::Length(Ok(length)))
        }
        Command::SetRange { offset, patch } => {
            let mut bytes = value.map(|value| value.to_vec()).unwrap_or_default();
            let end = offset + patch.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[*offset..end].copy_from_slice(patch);
            let length = bytes.len();
            (put(CompactBytes::from(bytes), deadline), Reply::Length(Ok(length)))
        }
        other => type_agnostic(live, other, now).expect("every string command is decided above"),
    }
}

/// The commands that work on a key of any type: DEL, EXPIRE, TTL, PERSIST.
fn type_agnostic(live: Option<&Stored>, command: &Command, now: u64) -> Option<(Write, Reply)> {
    let again = |entry: &Stored, deadline| Write::Put(Stored { value: entry.value.clone(), deadline });
    Some(match command {
        Command::Delete => (Write::Remove, Reply::Flag(live.is_some())),
        Command::Expire { deadline: at, only_if_no_ttl } => match live {
            None => (Write::Keep, Reply::Flag(false)),
            Some(entry) if *only_if_no_ttl && entry.deadline != NEVER => (Write::Keep, Reply::Flag(false)),
            // Redis deletes at once when the deadline is not in the future.
            Some(_) if *at <= now => (Write::Remove, Reply::Flag(true)),
            Some(entry) => (again(entry, *at), Reply::Flag(true)),
        },
        Command::Ttl => {
            let ttl = match live {
                None => Ttl::Missing,
                Some(entry) if entry.deadline == NEVER => Ttl::Persistent,
                Some(entry) => Ttl::ExpiresIn(entry.deadline.saturating_sub(now)),
            };
            (Write::Keep, Reply::Ttl(ttl))
        }
        Command::Persist => match live {
            Some(entry) if entry.deadline != NEVER => (again(entry, NEVER), Reply::Flag(true)),
            _ => (Write::Keep, Reply::Flag(false)),
        },
        Command::Advance { .. } => unreachable!("clock moves are applied by KeySpec::apply"),
        _ => return None,
    })
}

/// What a string command answers on a hash or a set: WRONGTYPE, and nothing written (SET
/// without GET is type-agnostic and never gets here).
fn refused(command: &Command, error: StoreError) -> (Write, Reply) {
    let reply = match command {
        Command::Set { return_previous: false, .. } => unreachable!("SET without GET overwrites any type"),
        Command::Get | Command::GetDel | Command::GetEx { .. } => Reply::Value(Err(error)),
        Command::Set { .. } => Reply::Set(Err(error)),
        Command::Incr => Reply::Integer(Err(error)),
        Command::IncrByFloat { .. } => Reply::Float(Err(error)),
        _ => Reply::Length(Err(error)),
    };
    (Write::Keep, reply)
}

/// The hash and set commands, and SET without GET (which replaces a value of any type);
/// `None` for the others.
fn collection_command(live: Option<&Stored>, command: &Command, deadline: u64) -> Option<(Write, Reply)> {
    let hash = || match live.map(|entry| &entry.value) {
        None => Ok(BTreeMap::new()),
        Some(Val::Hash(fields)) => Ok(fields.clone()),
        Some(_) => Err(StoreError::WrongType),
    };
    let set = || match live.map(|entry| &entry.value) {
        None => Ok(BTreeSet::new()),
        Some(Val::Set(members)) => Ok(members.clone()),
        Some(_) => Err(StoreError::WrongType),
    };
    // A collection left empty takes its key with it.
    let store_hash = |fields: BTreeMap<CompactBytes, CompactBytes>| match fields.is_empty() {
        true => Write::Remove,
        false => Write::Put(Stored { value: Val::Hash(fields), deadline }),
    };
    let store_set = |members: BTreeSet<CompactBytes>| match members.is_empty() {
        true => Write::Remove,
        false => Write::Put(Stored { value: Val::Set(members), deadline }),
    };
    let length = |result: Result<usize, StoreError>| Reply::Length(result);
    Some(match command {
        Command::Set { value, condition, return_previous: false, expiry } => {
            let allowed = match condition {
                SetCondition::Always => true,
                SetCondition::IfAbsent => live.is_none(),
                SetCondition::IfPresent => live.is_some(),
            };
            if !allowed {
                return Some((Write::Keep, Reply::Set(Ok(SetOutcome { written: false, previous: None }))));
            }
            let deadline = match expiry {
                SetExpiry::Clear => NEVER,
                SetExpiry::Keep => deadline,
                SetExpiry::At(at) => *at,
            };
            let reply = Reply::Set(Ok(SetOutcome { written: true, previous: None }));
            (Write::Put(Stored { value: Val::Str(value.clone()), deadline }), reply)
        }
        Command::HSet { field, value } => match hash() {
            Ok(mut fields) => {
                let added = usize::from(fields.insert(field.clone(), value.clone()).is_none());
                (store_hash(fields), length(Ok(added)))
            }
            Err(error) => (Write::Keep, length(Err(error))),
        },
        Command::HDel { field } => match hash() {
            Ok(mut fields) => match fields.remove(field) {
                Some(_) => (store_hash(fields), length(Ok(1))),
                None => (Write::Keep, length(Ok(0))),
            },
            Err(error) => (Write::Keep, length(Err(error))),
        },
        Command::HGet { field } => (Write::Keep, Reply::Value(hash().map(|fields| fields.get(field).cloned()))),
        Command::HLen => (Write::Keep, length(hash().map(|fields| fields.len()))),
        Command::HIncrBy { field } => match hash() {
            Ok(mut fields) => {
                let current = match fields.get(field) {
                    None => 0,
                    Some(text) => match parse_integer(text) {
                        Some(number) => number,
                        None => return Some((Write::Keep, Reply::Integer(Err(StoreError::HashNotAnInteger)))),
                    },
                };
                // The histories' counters stay far from overflow.
                let next = current + 1;
                fields.insert(field.clone(), CompactBytes::from(next.to_string()));
                (store_hash(fields), Reply::Integer(Ok(next)))
            }
            Err(error) => (Write::Keep, Reply::Integer(Err(error))),
        },
        Command::SAdd { member } => match set() {
            Ok(mut members) => {
                let added = usize::from(members.insert(member.clone()));
                (store_set(members), length(Ok(added)))
            }
            Err(error) => (Write::Keep, length(Err(error))),
        },
        Command::SRem { member } => match set() {
            Ok(mut members) => match members.remove(member) {
                true => (store_set(members), length(Ok(1))),
                false => (Write::Keep, length(Ok(0))),
            },
            Err(error) => (Write::Keep, length(Err(error))),
        },
        Command::SIsMember { member } => {
            (Write::Keep, length(set().map(|members| usize::from(members.contains(member)))))
        }
        Command::SCard => (Write::Keep, length(set().map(|members| members.len()))),
        // Only an empty or absent set gets here (`outcomes` pops from the others).
        Command::SPop => (Write::Keep, Reply::Value(set().map(|_| None))),
        _ => return None,
    })
}

/// INCRBYFLOAT's sum of `value` (a missing key counts as 0) and `increment`, as the store
/// formats it: the decimal arithmetic and its digits are `float.rs`'s, unit-tested there, so
/// the model asks a private store for them and checks only what concurrency can break.
fn float_sum(value: Option<&CompactBytes>, increment: f64) -> Result<CompactBytes, StoreError> {
    thread_local! {
        static SCRATCH: Store = Store::builder().build().expect("default configuration");
    }
    SCRATCH.with(|scratch| {
        match value {
            Some(value) => drop(scratch.set(b"x", value.clone(), SetOptions::default()).unwrap()),
            None => drop(scratch.delete(b"x")),
        }
        scratch.incr_by_float(b"x", Float::from(increment))
    })
}
