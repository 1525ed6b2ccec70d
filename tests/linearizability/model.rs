//! The sequential specification of one key: the single-key commands the history driver
//! issues, what each replies, and what each does to the key, following the Redis semantics
//! `src/engine/ops.rs` implements.
//!
//! Expiry deadlines in the tested commands lie an hour ahead, so nothing expires during a
//! test and the model only needs to know whether a key has a TTL, not when it ends.

use cstore::engine::{CompactBytes, SetCondition, SetOutcome, StoreError, parse_integer};

use super::checker::SequentialSpec;

/// A single-key command, with the arguments that change its meaning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Get,
    /// SET with NX / XX / neither, optionally GET (return the previous value) and KEEPTTL.
    Set {
        value: CompactBytes,
        condition: SetCondition,
        return_previous: bool,
        keep_ttl: bool,
    },
    Delete,
    Incr,
    /// EXPIRE one hour ahead, plain or NX (only if the key has no TTL).
    Expire {
        only_if_no_ttl: bool,
    },
    Ttl,
    GetDel,
    Append {
        suffix: CompactBytes,
    },
    Persist,
}

/// Whether a key exists and carries a TTL, which is what TTL tells apart when no deadline
/// can pass during the test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtlPresence {
    Missing,
    Persistent,
    HasTtl,
}

/// What a command returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Value(Option<CompactBytes>),
    Set(SetOutcome),
    Flag(bool),
    Integer(Result<i64, StoreError>),
    Length(Result<usize, StoreError>),
    Ttl(TtlPresence),
}

/// A key's value and whether it carries a TTL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Stored {
    pub value: CompactBytes,
    pub has_ttl: bool,
}

/// The state of one key: absent, or stored.
pub type KeyState = Option<Stored>;

/// The sequential specification of one key.
pub struct KeySpec;

impl SequentialSpec for KeySpec {
    type State = KeyState;
    type Op = Command;
    type Output = Reply;

    fn apply(state: &KeyState, command: &Command) -> (KeyState, Reply) {
        let unchanged = state.clone();
        let current_value = state.as_ref().map(|stored| stored.value.clone());
        let has_ttl = state.as_ref().is_some_and(|stored| stored.has_ttl);
        match command {
            Command::Get => (unchanged, Reply::Value(current_value)),
            Command::Set { value, condition, return_previous, keep_ttl } => {
                let previous = if *return_previous { current_value } else { None };
                let allowed = match condition {
                    SetCondition::Always => true,
                    SetCondition::IfAbsent => state.is_none(),
                    SetCondition::IfPresent => state.is_some(),
                };
                if !allowed {
                    return (unchanged, Reply::Set(SetOutcome { written: false, previous }));
                }
                // Without KEEPTTL a SET makes the key persistent.
                let next = Stored { value: value.clone(), has_ttl: *keep_ttl && has_ttl };
                (Some(next), Reply::Set(SetOutcome { written: true, previous }))
            }
            Command::Delete => (None, Reply::Flag(state.is_some())),
            Command::GetDel => (None, Reply::Value(current_value)),
            Command::Incr => {
                // A missing key counts as 0; the TTL survives the increment. The integer
                // grammar itself (Redis's string2ll) is unit-tested beside `parse_integer`.
                let current = match &current_value {
                    None => 0,
                    Some(value) => match parse_integer(value) {
                        Some(number) => number,
                        None => return (unchanged, Reply::Integer(Err(StoreError::NotAnInteger))),
                    },
                };
                match current.checked_add(1) {
                    Some(next) => {
                        let stored = Stored { value: CompactBytes::from(next.to_string()), has_ttl };
                        (Some(stored), Reply::Integer(Ok(next)))
                    }
                    None => (unchanged, Reply::Integer(Err(StoreError::Overflow))),
                }
            }
            Command::Expire { only_if_no_ttl } => match state {
                None => (None, Reply::Flag(false)),
                Some(_) if *only_if_no_ttl && has_ttl => (unchanged, Reply::Flag(false)),
                Some(stored) => (Some(Stored { has_ttl: true, ..stored.clone() }), Reply::Flag(true)),
            },
            Command::Ttl => {
                let presence = match state {
                    None => TtlPresence::Missing,
                    Some(Stored { has_ttl: false, .. }) => TtlPresence::Persistent,
                    Some(Stored { has_ttl: true, .. }) => TtlPresence::HasTtl,
                };
                (unchanged, Reply::Ttl(presence))
            }
            Command::Append { suffix } => {
                // APPEND creates a missing key (without TTL) and keeps an existing TTL.
                let value = CompactBytes::concat(&current_value.unwrap_or_default(), suffix);
                let length = value.len();
                (Some(Stored { value, has_ttl }), Reply::Length(Ok(length)))
            }
            Command::Persist => match state {
                Some(stored) if stored.has_ttl => {
                    (Some(Stored { has_ttl: false, ..stored.clone() }), Reply::Flag(true))
                }
                _ => (unchanged, Reply::Flag(false)),
            },
        }
    }
}
