//! The command table and dispatch: arity, authentication and memory checks happen here,
//! once, before a handler runs. Handlers live in one file per command family.

mod args;
mod connection;
mod docs;
mod expiry;
mod hashes;
mod keyspace;
mod persistence;
mod random;
mod scan;
pub(crate) mod server;
mod sets;
mod strings;
mod table;
mod table_types;
mod traced;
mod transactions;

use std::sync::LazyLock;
use std::time::Instant;

pub(crate) use args::Args;
pub(crate) use table::COMMANDS;
pub(crate) use transactions::Queued;

use super::aof::Logged;
use super::persistence::LOADING;
use super::reply::ReplyWriter;
use super::session::Session;
use super::state::ServerState;
use crate::engine::{Exclusive, Store, StoreError};
use crate::server::metrics::Outcome;
use crate::telemetry;
use traced::CommandTrace;

/// Why a command failed. `Display` is the full error line Redis would send, without the
/// leading `-`; variants that a client library branches on keep Redis's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CommandError {
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(&'static str),
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR value is not a valid float")]
    NotFloat,
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(&'static str),
    #[error("{} {}", .0.code(), .0)]
    Store(#[from] StoreError),
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    #[error("OOM command not allowed when used memory > 'maxmemory'.")]
    OutOfMemory,
    /// Any other error, already worded as Redis words it (code included).
    #[error("{0}")]
    Other(String),
}

impl CommandError {
    fn outcome(&self) -> Outcome {
        match self {
            CommandError::NoAuth | CommandError::OutOfMemory => Outcome::Rejected,
            _ => Outcome::Error,
        }
    }
}

/// Command flags, as COMMAND INFO reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Flags(u16);

impl Flags {
    pub(crate) const WRITE: Flags = Flags(1);
    pub(crate) const READONLY: Flags = Flags(1 << 1);
    pub(crate) const DENYOOM: Flags = Flags(1 << 2);
    pub(crate) const FAST: Flags = Flags(1 << 3);
    pub(crate) const ADMIN: Flags = Flags(1 << 4);
    pub(crate) const NOAUTH: Flags = Flags(1 << 5);
    pub(crate) const LOADING: Flags = Flags(1 << 6);
    pub(crate) const STALE: Flags = Flags(1 << 7);
    pub(crate) const NOSCRIPT: Flags = Flags(1 << 8);
    /// Refused between MULTI and EXEC.
    pub(crate) const NO_MULTI: Flags = Flags(1 << 9);
    /// cstore's own, not reported: the command runs with the store held exclusively, so that
    /// its changes to several keys are one (`engine/transaction.rs`).
    pub(crate) const EXCLUSIVE: Flags = Flags(1 << 10);

    const NAMES: [(Flags, &'static str); 10] = [
        (Flags::WRITE, "write"),
        (Flags::READONLY, "readonly"),
        (Flags::DENYOOM, "denyoom"),
        (Flags::FAST, "fast"),
        (Flags::ADMIN, "admin"),
        (Flags::NOAUTH, "no_auth"),
        (Flags::LOADING, "loading"),
        (Flags::STALE, "stale"),
        (Flags::NOSCRIPT, "noscript"),
        (Flags::NO_MULTI, "no_multi"),
    ];

    pub(crate) const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    pub(crate) fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub(crate) fn names(self) -> impl Iterator<Item = &'static str> {
        Flags::NAMES.into_iter().filter(move |(flag, _)| self.contains(*flag)).map(|(_, name)| name)
    }
}

/// What a handler gets: the server, the calling client, and where to write the reply.
pub(crate) struct Ctx<'a, 'o> {
    pub(crate) state: &'a ServerState,
    pub(crate) session: &'a mut Session,
    pub(crate) out: &'a mut ReplyWriter<'o>,
    /// The command only reads keys ([`Flags::READONLY`]): a database never used is read as
    /// empty, not created.
    reads_only: bool,
}

/// Output a command may leave unsent before it stops and lets the connection write
/// ([`Ctx::stream_array`]).
const STREAM_CHUNK: usize = 256 * 1024;

impl<'a> Ctx<'a, '_> {
    /// The client's selected database (created if a command that writes uses it first).
    pub(crate) fn db(&self) -> &'a Store {
        let number = self.session.db();
        if self.reads_only {
            return self.state.databases.existing(number).unwrap_or(&self.state.never_used);
        }
        self.state.database(number)
    }

    /// Writes an array reply of `items`, calling `write` for each, as a stream: once
    /// [`STREAM_CHUNK`] bytes wait, it records where it stopped in [`Session::resume_at`] and
    /// returns false; the connection writes them once the client reads, then runs the command
    /// again, which calls this again to go on. Returns true once the whole array is written.
    /// Inside EXEC it writes the whole array at once (the output limits still apply).
    pub(crate) fn stream_array<T>(&mut self, items: &[T], mut write: impl FnMut(&mut Self, &T)) -> bool {
        let start = self.session.resume_at.take().unwrap_or(0);
        if start == 0 {
            self.out.array(items.len());
        }
        for (index, item) in items.iter().enumerate().skip(start) {
            // At least one item per call, so every call makes progress.
            if index > start && self.out.buffered() >= STREAM_CHUNK && !self.session.in_exec {
                self.session.resume_at = Some(index);
                return false;
            }
            write(self, item);
        }
        true
    }

    /// Runs a write to `key` (`op` returns its result and whether it changed the store, or
    /// the [`Logged`] state it left), logged to the AOF in the key's order; this client's
    /// replies wait for the log.
    pub(crate) fn logged<'v, R, L: Into<Logged<'v>>>(
        &mut self,
        key: &[u8],
        op: impl FnOnce(&crate::engine::Store) -> (R, L),
    ) -> R {
        let store = self.db();
        self.state.aof.write(&mut self.session.aof_wait, store, key, || {
            let (result, logged) = op(store);
            (result, logged.into())
        })
    }

    /// Runs `op`, a change of several keys as one (the command holds the store exclusively:
    /// [`Flags::EXCLUSIVE`]) that returns its result and whether it changed them; then logs
    /// the resulting state of each of `keys` between MULTI and EXEC, so that a replay applies
    /// all of them or none.
    pub(crate) fn logged_together<R>(
        &mut self,
        keys: &[&[u8]],
        op: impl FnOnce(&crate::engine::Store) -> (R, bool),
    ) -> R {
        let store = self.db();
        let keys: Vec<(&Store, &[u8])> = keys.iter().map(|key| (store, *key)).collect();
        self.logged_across(&keys, || op(store))
    }

    /// [`Ctx::logged_together`] for keys of several databases (MOVE, COPY ... DB), each
    /// named with its database's store.
    pub(crate) fn logged_across<R>(&mut self, keys: &[(&Store, &[u8])], op: impl FnOnce() -> (R, bool)) -> R {
        let state = self.state;
        let (result, logged_up_to) = state.aof.transaction(|| {
            let (result, changed) = op();
            for (store, key) in keys.iter().filter(|_| changed) {
                let mut ignored = 0;
                state.aof.write(&mut ignored, store, key, || ((), Logged::Changed));
            }
            result
        });
        self.session.aof_wait = self.session.aof_wait.max(logged_up_to);
        result
    }
}

pub(crate) type Handler = fn(&mut Ctx<'_, '_>, Args<'_>) -> Result<(), CommandError>;

/// One row of the command table.
#[derive(Clone)]
pub(crate) struct CommandSpec {
    /// Lower-case, as Redis reports command names.
    pub(crate) name: &'static str,
    /// Arguments after the name, in the notation of Redis's documentation (see `docs.rs`).
    pub(crate) syntax: &'static str,
    /// Redis's convention: N means exactly N arguments including the name, -N at least N.
    pub(crate) arity: i32,
    pub(crate) flags: Flags,
    /// Key positions (1-based; last -1 = through the end), for COMMAND INFO and clients.
    pub(crate) first_key: i32,
    pub(crate) last_key: i32,
    pub(crate) key_step: i32,
    pub(crate) group: &'static str,
    pub(crate) since: &'static str,
    pub(crate) complexity: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) handler: Handler,
}

impl CommandSpec {
    fn arity_allows(&self, argc: usize) -> bool {
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        let arity = i64::from(self.arity);
        if arity >= 0 { argc == arity } else { argc >= -arity }
    }
}

/// The longest command name in the table, so that lookups can lower-case into a stack buffer.
const MAX_NAME_LEN: usize = 16;

/// Command names to table positions. foldhash rather than std's SipHash: the names are ours,
/// not an attacker's choice of keys, and SipHash cost 3% of a pipelined GET's instructions.
static INDEX: LazyLock<foldhash::HashMap<&'static [u8], usize>> =
    LazyLock::new(|| COMMANDS.iter().enumerate().map(|(i, spec)| (spec.name.as_bytes(), i)).collect());

/// Table positions of GET and SET, the commands most requests name: [`lookup`] finds them
/// with two comparisons instead of hashing.
static GET_SET: LazyLock<[usize; 2]> = LazyLock::new(|| [INDEX[&b"get"[..]], INDEX[&b"set"[..]]]);

/// Finds a command by name, case-insensitively, without allocating.
pub(crate) fn lookup(name: &[u8]) -> Option<(usize, &'static CommandSpec)> {
    if let [first, b'e' | b'E', b't' | b'T'] = name {
        let hot = match first {
            b'g' | b'G' => Some(GET_SET[0]),
            b's' | b'S' => Some(GET_SET[1]),
            _ => None,
        };
        if let Some(index) = hot {
            return Some((index, &COMMANDS[index]));
        }
    }
    let mut lower = [0u8; MAX_NAME_LEN];
    let lower = lower.get_mut(..name.len())?;
    for (slot, byte) in lower.iter_mut().zip(name) {
        *slot = byte.to_ascii_lowercase();
    }
    INDEX.get(&*lower).map(|&index| (index, &COMMANDS[index]))
}

/// Redis's reply to an unknown command: the name and the start of the arguments, quoted.
fn unknown_command(request: &[&[u8]]) -> String {
    let mut args = String::new();
    for arg in request.iter().skip(1) {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        let text = String::from_utf8_lossy(arg);
        args.push('\'');
        args.extend(text.chars().take(room));
        args.push_str("' ");
    }
    let name = String::from_utf8_lossy(request.first().map_or(&[][..], |n| n));
    let name: String = name.chars().take(128).collect();
    format!("ERR unknown command '{name}', with args beginning with: {args}")
}

/// Exclusive commands one connection runs in a row before it hands the store over fairly.
const MAX_EXCLUSIVE_RUN: u32 = 64;

/// The store's exclusivity a connection keeps across a run of exclusive commands.
pub(crate) struct HeldExclusive<'s> {
    guard: Exclusive<'s>,
    /// Commands run under it so far.
    commands: u32,
}

/// Runs one request and returns when it finished. `started` is when the server began on it:
/// a connection passes the previous request's finish time, so the clock is read once per
/// request rather than twice (a request's time then includes its own decoding).
///
/// `held` is the store's exclusivity kept from the connection's previous request: a run of
/// pipelined commands that each hold the store exclusively ([`Flags::EXCLUSIVE`], such as
/// MSET) takes it once, instead of handing the store over between workers per command. Any
/// other request lets it go first; the caller lets it go before it waits for anything.
pub(crate) fn execute<'s>(
    state: &'s ServerState,
    session: &mut Session,
    request: &[&[u8]],
    out: &mut ReplyWriter<'_>,
    started: Instant,
    held: &mut Option<HeldExclusive<'s>>,
) -> Instant {
    // A trace context sent with CLIENT TRACEPARENT is for the next request, whatever it is.
    let parent = session.trace_parent.take();
    let Some((index, spec)) = request.first().and_then(|name| lookup(name)) else {
        *held = None;
        state.metrics.unknown_command();
        session.queue(request, true);
        out.error(&unknown_command(request));
        return Instant::now();
    };
    // Commands that touch keys see every transaction whole (queuing one may evict, which
    // writes); those that change several keys as one are transactions themselves; EXEC holds
    // the store exclusively itself.
    let databases = &*state.databases;
    let exclusive = spec.flags.contains(Flags::EXCLUSIVE) && session.transaction().is_none();
    if !exclusive {
        // Before a pass or EXEC's own exclusivity: neither may be asked for while it is held.
        *held = None;
    } else {
        // A long run hands the store over now and then, so that a client pipelining thousands
        // of MSETs makes the other workers wait one run at a time, not for all of them.
        if let Some(run) = held.take_if(|run| run.commands >= MAX_EXCLUSIVE_RUN) {
            run.guard.release_fairly();
        }
        let run = held.get_or_insert_with(|| HeldExclusive { guard: databases.exclusive(), commands: 0 });
        run.commands += 1;
    }
    let touches_keys = spec.flags.contains(Flags::WRITE) || spec.flags.contains(Flags::READONLY);
    let _pass = (!exclusive && touches_keys).then(|| databases.pass());
    if session.transaction().is_some() && !controls_transactions(spec) {
        queue(state, session, (index, spec), request, out);
        return Instant::now();
    }
    perform(state, session, (index, spec), request, out, started, parent)
}

/// One of EXEC's commands, run while EXEC holds the store exclusively.
fn run_in_transaction(state: &ServerState, session: &mut Session, request: &[&[u8]], out: &mut ReplyWriter<'_>) {
    // Every queued command was found when it was queued.
    if let Some((index, spec)) = request.first().and_then(|name| lookup(name)) {
        perform(state, session, (index, spec), request, out, Instant::now(), None);
    }
}

/// The commands that run at once between MULTI and EXEC instead of being queued, as in Redis.
fn controls_transactions(spec: &CommandSpec) -> bool {
    matches!(spec.name, "exec" | "discard" | "multi" | "watch" | "quit" | "reset")
}

/// Queues a command after MULTI, with the checks Redis makes then: a refused command
/// answers its error and dooms the transaction (EXEC answers EXECABORT).
fn queue(
    state: &ServerState,
    session: &mut Session,
    (index, spec): (usize, &'static CommandSpec),
    request: &[&[u8]],
    out: &mut ReplyWriter<'_>,
) {
    session.touch(index, Instant::now());
    let admitted = if spec.flags.contains(Flags::NO_MULTI) {
        Err(CommandError::Other("ERR Command not allowed inside a transaction".into()))
    } else {
        admit(state, session, spec, request)
    };
    match admitted {
        Ok(()) => {
            session.queue(request, false);
            out.simple("QUEUED");
        }
        Err(error) => {
            session.queue(request, true);
            out.error(&error.to_string());
        }
    }
}

#[allow(clippy::too_many_arguments)] // The request, where its reply goes, and its trace.
fn perform(
    state: &ServerState,
    session: &mut Session,
    (index, spec): (usize, &'static CommandSpec),
    request: &[&[u8]],
    out: &mut ReplyWriter<'_>,
    started: Instant,
    parent: Option<opentelemetry::trace::SpanContext>,
) -> Instant {
    session.touch(index, started);
    // Head sampling: an unsampled command pays one relaxed load and a comparison.
    let sampled = match &parent {
        Some(parent) => telemetry::sampler::sample_child_of(parent),
        None => telemetry::sampler::sample(state.settings.trace_sample_ratio()),
    };
    let trace = sampled.then(|| CommandTrace::start(state, spec, request, session.db(), out, parent));
    let result = run(state, session, spec, request, out);
    let outcome = match &result {
        Ok(()) => Outcome::Ok,
        Err(error) => {
            out.error(&error.to_string());
            error.outcome()
        }
    };
    if let Some(trace) = trace {
        trace.finish(&result, outcome.label(), out);
    }
    let finished = Instant::now();
    state.metrics.record_command(index, outcome, finished.saturating_duration_since(started));
    finished
}

/// Continues a command that stopped with its reply partly written (it set
/// [`Session::resume_at`]); its checks, metrics and trace belong to its first part.
pub(crate) fn resume(state: &ServerState, session: &mut Session, request: &[&[u8]], out: &mut ReplyWriter<'_>) {
    if let Some((_, spec)) = request.first().and_then(|name| lookup(name)) {
        let mut ctx = Ctx { state, session, out, reads_only: spec.flags.contains(Flags::READONLY) };
        if let Err(error) = (spec.handler)(&mut ctx, Args::new(&request[1..])) {
            out.error(&error.to_string());
        }
    }
}

fn run(
    state: &ServerState,
    session: &mut Session,
    spec: &'static CommandSpec,
    request: &[&[u8]],
    out: &mut ReplyWriter<'_>,
) -> Result<(), CommandError> {
    if let Err(error) = admit(state, session, spec, request) {
        return Err(if spec.name == "exec" { transactions::abort(state, session, &error) } else { error });
    }
    let mut ctx = Ctx { state, session, out, reads_only: spec.flags.contains(Flags::READONLY) };
    (spec.handler)(&mut ctx, Args::new(&request[1..]))?;
    // One change per write command that succeeded: close to Redis's per-key count for the
    // single-key commands most writes are (MSET and DEL of several keys count once).
    if spec.flags.contains(Flags::WRITE) {
        state.persistence.record_write();
    }
    Ok(())
}

/// The checks before a command runs (or is queued after MULTI): arity, authentication,
/// loading, refused writes, and room under `maxmemory` (evicting to make it).
fn admit(
    state: &ServerState,
    session: &mut Session,
    spec: &'static CommandSpec,
    request: &[&[u8]],
) -> Result<(), CommandError> {
    if !spec.arity_allows(request.len()) {
        return Err(CommandError::WrongArity(spec.name));
    }
    // Against the password in force now, as Redis 7 decides per command: clearing the
    // password releases clients that had not authenticated. A client admitted while no
    // password was set stays authenticated when one is set later, as in Redis.
    if !spec.flags.contains(Flags::NOAUTH) && !session.is_authenticated(&state.settings) {
        return Err(CommandError::NoAuth);
    }
    // While the startup load runs, only what Redis allows then (the `loading` flag) is served.
    if !spec.flags.contains(Flags::LOADING) && state.persistence.is_loading() {
        return Err(CommandError::Other(LOADING.to_owned()));
    }
    let write = spec.flags.contains(Flags::WRITE);
    if write {
        state.persistence.check_writes_allowed()?;
        state.aof.check_writes_allowed()?;
    }
    if spec.flags.contains(Flags::DENYOOM) {
        let made_room = state.make_room();
        // Keys evicted to make room are in the AOF before this command's reply goes out.
        session.aof_wait = session.aof_wait.max(state.aof.log_removals_in_command());
        made_room?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_found_in_any_case() {
        for (index, spec) in COMMANDS.iter().enumerate() {
            assert!(spec.name.len() <= MAX_NAME_LEN, "{} is longer than the lookup buffer", spec.name);
            assert_eq!(lookup(spec.name.as_bytes()).map(|(i, _)| i), Some(index));
            assert_eq!(lookup(spec.name.to_uppercase().as_bytes()).map(|(i, _)| i), Some(index));
        }
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(b"a-command-name-longer-than-any").is_none());
        assert!(lookup(b"").is_none());
    }

    #[test]
    fn unknown_command_message_matches_redis() {
        let request: Vec<&[u8]> = ["foo", "a", "b"].iter().map(|s| s.as_bytes()).collect();
        assert_eq!(unknown_command(&request), "ERR unknown command 'foo', with args beginning with: 'a' 'b' ");
        assert_eq!(unknown_command(&request[..1]), "ERR unknown command 'foo', with args beginning with: ");
    }

    #[test]
    fn arity_follows_redis_convention() {
        let get = lookup(b"get").unwrap().1;
        assert!(get.arity_allows(2) && !get.arity_allows(1) && !get.arity_allows(3));
        let del = lookup(b"del").unwrap().1;
        assert!(del.arity_allows(2) && del.arity_allows(10) && !del.arity_allows(1));
    }
}
