//! One vocabulary of store commands for the property tests. `model.rs` draws commands over a
//! few colliding keys and checks every reply against a sequential Redis model; `no_panic.rs`
//! draws them over arbitrary bytes and numbers and checks only that nothing panics. Each
//! describes what to draw from with an [`OpSpace`] and runs a command with [`apply`].

use bytes::Bytes;
use cstore::engine::{
    CompactBytes, ExpireCondition, ManualClock, SetCondition, SetExpiry, SetOptions, SetOutcome, Store, StoreError,
    SweepReport, Ttl, TtlUpdate,
};
use proptest::prelude::*;

/// An expiry deadline as drawn. Relative deadlines land around the clock's reading at the
/// moment the command runs (just past, exactly now, just ahead), which is where expiry rules
/// differ; absolute ones can be anything, `u64::MAX` included.
#[derive(Clone, Copy, Debug)]
pub enum Deadline {
    /// This many milliseconds from now; zero or negative is already due.
    In(i64),
    /// This time, in milliseconds since the Unix epoch.
    At(u64),
}

impl Deadline {
    pub fn resolve(self, now: u64) -> u64 {
        match self {
            Deadline::In(offset) => now.saturating_add_signed(offset),
            Deadline::At(at) => at,
        }
    }
}

/// SET's expiry option, its deadline not yet resolved.
#[derive(Clone, Copy, Debug)]
pub enum SetTtl {
    Clear,
    Keep,
    At(Deadline),
}

/// GETEX's expiry option, its deadline not yet resolved.
#[derive(Clone, Copy, Debug)]
pub enum GetExTtl {
    Keep,
    Persist,
    At(Deadline),
}

/// One call on the public API (the test's clock and the sweeper included).
#[derive(Clone, Debug)]
pub enum Op {
    Get(Bytes),
    Set {
        key: Bytes,
        value: Bytes,
        condition: SetCondition,
        ttl: SetTtl,
        return_previous: bool,
    },
    Delete(Bytes),
    Exists(Bytes),
    GetDel(Bytes),
    GetEx(Bytes, GetExTtl),
    IncrBy(Bytes, i64),
    IncrByFloat(Bytes, f64),
    Append(Bytes, Bytes),
    Strlen(Bytes),
    GetRange(Bytes, i64, i64),
    SetRange(Bytes, usize, Bytes),
    ExpireAt(Bytes, Deadline, ExpireCondition),
    Persist(Bytes),
    Ttl(Bytes),
    RandomKey,
    Len,
    Clear,
    Keys(Bytes),
    /// A whole SCAN walk: calls from `cursor` until the store answers cursor 0.
    Scan {
        cursor: u64,
        pattern: Option<Bytes>,
        count: usize,
    },
    /// Moves the manual clock forward.
    Advance(u64),
    /// One active-expiry pass.
    Sweep,
}

/// What the store answered to an [`Op`].
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Value(Option<Bytes>),
    Flag(bool),
    Set(SetOutcome),
    Size(usize),
    Ttl(Ttl),
    Integer(Result<i64, StoreError>),
    Float(Result<Bytes, StoreError>),
    NewLength(Result<usize, StoreError>),
    Range(Bytes),
    /// Keys in the order the store returned them.
    Keys(Vec<Bytes>),
    Swept(SweepReport),
    Done,
}

/// What the store returned, as the `Bytes` the models compare with.
pub fn bytes_of(stored: CompactBytes) -> Bytes {
    Bytes::copy_from_slice(&stored)
}

/// The models store only strings, so a type error is a bug of the store.
fn strings_only<T>(reply: Result<T, cstore::engine::StoreError>) -> T {
    reply.expect("only strings are stored, so no command meets the wrong type")
}

/// Runs `op` on `store`, whose clock is `clock`.
pub fn apply(store: &Store, clock: &ManualClock, op: &Op) -> Reply {
    let now = clock.now_ms();
    match op {
        Op::Get(key) => Reply::Value(strings_only(store.get(key)).map(bytes_of)),
        Op::Set { key, value, condition, ttl, return_previous } => {
            let expiry = match *ttl {
                SetTtl::Clear => SetExpiry::Clear,
                SetTtl::Keep => SetExpiry::Keep,
                SetTtl::At(deadline) => SetExpiry::At(deadline.resolve(now)),
            };
            let options = SetOptions { condition: *condition, expiry, return_previous: *return_previous };
            Reply::Set(strings_only(store.set(key, value.clone(), options)))
        }
        Op::Delete(key) => Reply::Flag(store.delete(key)),
        Op::Exists(key) => Reply::Flag(store.exists(key)),
        Op::GetDel(key) => Reply::Value(strings_only(store.getdel(key)).map(bytes_of)),
        Op::GetEx(key, ttl) => {
            let update = match *ttl {
                GetExTtl::Keep => TtlUpdate::Keep,
                GetExTtl::Persist => TtlUpdate::Persist,
                GetExTtl::At(deadline) => TtlUpdate::At(deadline.resolve(now)),
            };
            Reply::Value(strings_only(store.getex(key, update)).map(bytes_of))
        }
        Op::IncrBy(key, delta) => Reply::Integer(store.incr_by(key, *delta)),
        Op::IncrByFloat(key, delta) => Reply::Float(store.incr_by_float(key, *delta).map(bytes_of)),
        Op::Append(key, suffix) => Reply::NewLength(store.append(key, suffix)),
        Op::Strlen(key) => Reply::Size(strings_only(store.strlen(key))),
        Op::GetRange(key, start, end) => Reply::Range(bytes_of(strings_only(store.getrange(key, *start, *end)))),
        Op::SetRange(key, offset, patch) => Reply::NewLength(store.setrange(key, *offset, patch)),
        Op::ExpireAt(key, deadline, condition) => Reply::Flag(store.expire_at(key, deadline.resolve(now), *condition)),
        Op::Persist(key) => Reply::Flag(store.persist(key)),
        Op::Ttl(key) => Reply::Ttl(store.ttl(key)),
        Op::RandomKey => Reply::Value(store.random_key().map(bytes_of)),
        Op::Len => Reply::Size(store.len()),
        Op::Clear => Reply::Size(store.clear()),
        Op::Keys(pattern) => Reply::Keys(store.keys(pattern).into_iter().map(bytes_of).collect()),
        Op::Scan { cursor, pattern, count } => Reply::Keys(walk(store, *cursor, pattern.as_deref(), *count)),
        Op::Advance(ms) => {
            clock.advance(*ms);
            Reply::Done
        }
        Op::Sweep => Reply::Swept(store.sweep_expired()),
    }
}

/// Calls SCAN from `cursor` until the store answers cursor 0, and returns every key in the
/// order it was returned (duplicates kept, so that callers can check for them).
pub fn walk(store: &Store, cursor: u64, pattern: Option<&[u8]>, count: usize) -> Vec<Bytes> {
    walk_with(store, cursor, pattern, count, |_| {})
}

/// [`walk`], calling `between_calls` after each SCAN call (to let other threads in, or to
/// write) with the keys that call returned.
pub fn walk_with(
    store: &Store,
    cursor: u64,
    pattern: Option<&[u8]>,
    count: usize,
    mut between_calls: impl FnMut(&[Bytes]),
) -> Vec<Bytes> {
    // Every call moves the cursor forward by at least one position or one shard, so even a
    // 4096-shard store walked with COUNT 1 while keys are inserted ends far below this; a walk
    // that reaches it has a cursor that stopped advancing.
    const MAX_CALLS: usize = 1 << 22;
    let mut keys = Vec::new();
    let mut cursor = cursor;
    for _ in 0..MAX_CALLS {
        let (next, chunk) = store.scan(cursor, pattern, count);
        let returned = keys.len();
        keys.extend(chunk.into_iter().map(bytes_of));
        if next == 0 {
            return keys;
        }
        cursor = next;
        between_calls(&keys[returned..]);
    }
    panic!("SCAN did not return to cursor 0 within {MAX_CALLS} calls");
}

/// The argument spaces commands are drawn from; [`OpSpace::op`] combines them.
pub struct OpSpace {
    pub key: BoxedStrategy<Bytes>,
    /// Values for SET and APPEND, and patches for SETRANGE.
    pub value: BoxedStrategy<Bytes>,
    /// Patterns for KEYS and SCAN MATCH.
    pub pattern: BoxedStrategy<Bytes>,
    pub int_delta: BoxedStrategy<i64>,
    pub float_delta: BoxedStrategy<f64>,
    /// GETRANGE's start and end.
    pub range_index: BoxedStrategy<i64>,
    /// SETRANGE's offset.
    pub offset: BoxedStrategy<usize>,
    pub deadline: BoxedStrategy<Deadline>,
    pub expire_condition: BoxedStrategy<ExpireCondition>,
    /// Where a SCAN walk starts.
    pub cursor: BoxedStrategy<u64>,
    /// SCAN's COUNT.
    pub count: BoxedStrategy<usize>,
    /// How far the clock moves in one step.
    pub advance: BoxedStrategy<u64>,
}

impl OpSpace {
    /// Any command, weighted towards the writes and reads that interact most (SET with its
    /// options, expiry, counters).
    pub fn op(&self) -> impl Strategy<Value = Op> + use<> {
        let key = self.key.clone();
        let value = self.value.clone();
        let deadline = self.deadline.clone();
        let set_ttl = prop_oneof![Just(SetTtl::Clear), Just(SetTtl::Keep), deadline.clone().prop_map(SetTtl::At),];
        let getex_ttl =
            prop_oneof![Just(GetExTtl::Keep), Just(GetExTtl::Persist), deadline.clone().prop_map(GetExTtl::At),];
        let set_condition =
            prop_oneof![Just(SetCondition::Always), Just(SetCondition::IfAbsent), Just(SetCondition::IfPresent)];
        prop_oneof![
            4 => key.clone().prop_map(Op::Get),
            8 => (key.clone(), value.clone(), set_condition, set_ttl, any::<bool>()).prop_map(
                |(key, value, condition, ttl, return_previous)| Op::Set { key, value, condition, ttl, return_previous }
            ),
            2 => key.clone().prop_map(Op::Delete),
            2 => key.clone().prop_map(Op::Exists),
            2 => key.clone().prop_map(Op::GetDel),
            3 => (key.clone(), getex_ttl).prop_map(|(key, ttl)| Op::GetEx(key, ttl)),
            4 => (key.clone(), self.int_delta.clone()).prop_map(|(key, delta)| Op::IncrBy(key, delta)),
            4 => (key.clone(), self.float_delta.clone()).prop_map(|(key, delta)| Op::IncrByFloat(key, delta)),
            3 => (key.clone(), value.clone()).prop_map(|(key, suffix)| Op::Append(key, suffix)),
            2 => key.clone().prop_map(Op::Strlen),
            3 => (key.clone(), self.range_index.clone(), self.range_index.clone())
                .prop_map(|(key, start, end)| Op::GetRange(key, start, end)),
            3 => (key.clone(), self.offset.clone(), value)
                .prop_map(|(key, offset, patch)| Op::SetRange(key, offset, patch)),
            5 => (key.clone(), deadline, self.expire_condition.clone())
                .prop_map(|(key, deadline, condition)| Op::ExpireAt(key, deadline, condition)),
            2 => key.clone().prop_map(Op::Persist),
            3 => key.prop_map(Op::Ttl),
            1 => Just(Op::RandomKey),
            2 => Just(Op::Len),
            1 => Just(Op::Clear),
            2 => self.pattern.clone().prop_map(Op::Keys),
            2 => (self.cursor.clone(), proptest::option::of(self.pattern.clone()), self.count.clone())
                .prop_map(|(cursor, pattern, count)| Op::Scan { cursor, pattern, count }),
            6 => self.advance.clone().prop_map(Op::Advance),
            1 => Just(Op::Sweep),
        ]
    }
}
