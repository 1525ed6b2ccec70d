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
    Value(Option<CompactBytes>),
    Set(SetOutcome),
    Flag(bool),
    Integer(Result<i64, StoreError>),
    Float(Result<CompactBytes, StoreError>),
    Length(Result<usize, StoreError>),
    Ttl(Ttl),
    Advanced,
}

/// A key's value and its deadline ([`NEVER`] for none).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Stored {
    pub value: CompactBytes,
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
            .map(|now| {
                let (stored, reply) = step(state.stored.as_ref(), &timed.command, now);
                (KeyState { stored, clock: state.clock.clone() }, reply)
            })
            .collect()
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

fn decide(live: Option<&Stored>, command: &Command, now: u64) -> (Write, Reply) {
    let value = live.map(|entry| entry.value.clone());
    let deadline = live.map_or(NEVER, |entry| entry.deadline);
    let put = |value: CompactBytes, deadline: u64| Write::Put(Stored { value, deadline });
    match command {
        Command::Get => (Write::Keep, Reply::Value(value)),
        Command::Set { value: new, condition, return_previous, expiry } => {
            let previous = if *return_previous { value } else { None };
            let allowed = match condition {
                SetCondition::Always => true,
                SetCondition::IfAbsent => live.is_none(),
                SetCondition::IfPresent => live.is_some(),
            };
            if !allowed {
                return (Write::Keep, Reply::Set(SetOutcome { written: false, previous }));
            }
            let deadline = match expiry {
                SetExpiry::Clear => NEVER,
                SetExpiry::Keep => deadline,
                // A deadline already past leaves the key absent (through the write rule).
                SetExpiry::At(at) => *at,
            };
            (put(new.clone(), deadline), Reply::Set(SetOutcome { written: true, previous }))
        }
        Command::Delete => (Write::Remove, Reply::Flag(live.is_some())),
        Command::GetDel => (Write::Remove, Reply::Value(value)),
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
        Command::Expire { deadline: at, only_if_no_ttl } => match live {
            None => (Write::Keep, Reply::Flag(false)),
            Some(_) if *only_if_no_ttl && deadline != NEVER => (Write::Keep, Reply::Flag(false)),
            // Redis deletes at once when the deadline is not in the future.
            Some(_) if *at <= now => (Write::Remove, Reply::Flag(true)),
            Some(entry) => (put(entry.value.clone(), *at), Reply::Flag(true)),
        },
        Command::Ttl => {
            let ttl = match live {
                None => Ttl::Missing,
                Some(entry) if entry.deadline == NEVER => Ttl::Persistent,
                Some(entry) => Ttl::ExpiresIn(entry.deadline.saturating_sub(now)),
            };
            (Write::Keep, Reply::Ttl(ttl))
        }
        Command::GetEx { update } => {
            let Some(entry) = live else { return (Write::Keep, Reply::Value(None)) };
            let write = match update {
                TtlUpdate::Keep => Write::Keep,
                TtlUpdate::Persist => put(entry.value.clone(), NEVER),
                TtlUpdate::At(at) if *at <= now => Write::Remove,
                TtlUpdate::At(at) => put(entry.value.clone(), *at),
            };
            (write, Reply::Value(value))
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
        Command::Persist => match live {
            Some(entry) if entry.deadline != NEVER => (put(entry.value.clone(), NEVER), Reply::Flag(true)),
            _ => (Write::Keep, Reply::Flag(false)),
        },
        Command::Advance { .. } => unreachable!("clock moves are applied by KeySpec::apply"),
    }
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
            Some(value) => drop(scratch.set(b"x", value.clone(), SetOptions::default())),
            None => drop(scratch.delete(b"x")),
        }
        scratch.incr_by_float(b"x", Float::from(increment))
    })
}
