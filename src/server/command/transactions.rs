//! MULTI, EXEC, DISCARD, WATCH and UNWATCH, with Redis's semantics: between MULTI and EXEC
//! commands are checked and queued (+QUEUED); a command refused while queuing makes EXEC
//! answer EXECABORT; EXEC runs the queue as one transaction (`engine/transaction.rs`), where
//! a command that fails answers its error and the others still run (no rollback); a watched
//! key that changed makes EXEC answer a null array instead (`engine/watch.rs`).

use super::{Args, CommandError, Ctx, run_in_transaction};
use crate::server::session::Session;
use crate::server::state::ServerState;

/// The commands queued since MULTI.
#[derive(Default)]
pub(crate) struct Queued {
    commands: Vec<Vec<Vec<u8>>>,
    /// Bytes the queued arguments hold (CLIENT LIST's `multi-mem`).
    memory: usize,
    /// A command was refused while queuing: EXEC must refuse the whole transaction.
    refused: bool,
}

impl Queued {
    pub(crate) fn push(&mut self, request: &[&[u8]]) {
        self.memory += request.iter().map(|arg| arg.len() + size_of::<Vec<u8>>()).sum::<usize>();
        self.commands.push(request.iter().map(|arg| arg.to_vec()).collect());
    }

    pub(crate) fn refuse(&mut self) {
        self.refused = true;
    }

    pub(crate) fn len(&self) -> usize {
        self.commands.len()
    }

    pub(crate) fn memory(&self) -> usize {
        self.memory
    }
}

const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

/// An EXEC refused before it ran (arity, authentication, memory, ...): as Redis does, the
/// transaction is discarded and the error says why.
pub(crate) fn abort(state: &ServerState, session: &mut Session, refusal: &CommandError) -> CommandError {
    session.end_transaction();
    state.databases.unwatch(&mut session.watcher);
    let reason = refusal.to_string();
    let reason = reason.strip_prefix("ERR ").unwrap_or(&reason);
    CommandError::Other(format!("EXECABORT Transaction discarded because of: {reason}"))
}

pub(crate) fn multi(ctx: &mut Ctx<'_, '_>, _args: Args<'_>) -> Result<(), CommandError> {
    if ctx.session.transaction().is_some() {
        return Err(CommandError::Other("ERR MULTI calls can not be nested".into()));
    }
    ctx.session.begin_transaction();
    ctx.out.ok();
    Ok(())
}

pub(crate) fn discard(ctx: &mut Ctx<'_, '_>, _args: Args<'_>) -> Result<(), CommandError> {
    if ctx.session.end_transaction().is_none() {
        return Err(CommandError::Other("ERR DISCARD without MULTI".into()));
    }
    ctx.state.databases.unwatch(&mut ctx.session.watcher);
    ctx.out.ok();
    Ok(())
}

pub(crate) fn exec(ctx: &mut Ctx<'_, '_>, _args: Args<'_>) -> Result<(), CommandError> {
    let Some(queued) = ctx.session.take_transaction() else {
        return Err(CommandError::Other("ERR EXEC without MULTI".into()));
    };
    exec_queued(ctx, &queued);
    ctx.session.transaction_done();
    if queued.refused { Err(CommandError::Other(EXECABORT.into())) } else { Ok(()) }
}

/// Runs the queue (or refuses it: the caller answers EXECABORT for a refused queue).
fn exec_queued(ctx: &mut Ctx<'_, '_>, queued: &Queued) {
    let databases = &*ctx.state.databases;
    if queued.refused {
        databases.unwatch(&mut ctx.session.watcher);
        return;
    }
    let exclusive = databases.exclusive();
    if databases.watched_changed(&ctx.session.watcher) {
        drop(exclusive);
        databases.unwatch(&mut ctx.session.watcher);
        ctx.out.null_array();
        return;
    }
    // Unwatched before the commands run, as Redis does: their own writes are not a change.
    databases.unwatch(&mut ctx.session.watcher);
    ctx.out.array(queued.commands.len());
    ctx.session.in_exec = true;
    let ((), logged_up_to) = ctx.state.aof.transaction(|| {
        for command in &queued.commands {
            let request: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
            run_in_transaction(ctx.state, ctx.session, &request, ctx.out);
        }
    });
    ctx.session.in_exec = false;
    drop(exclusive);
    ctx.session.aof_wait = ctx.session.aof_wait.max(logged_up_to);
}

pub(crate) fn watch(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    if ctx.session.transaction().is_some() {
        return Err(CommandError::Other("ERR WATCH inside MULTI is not allowed".into()));
    }
    // Under a pass: a SWAPDB (which holds every database exclusively) cannot come between
    // finding the client's database and registering the key under its number.
    let _pass = ctx.state.databases.pass();
    while !args.is_empty() {
        let key = args.bytes()?;
        ctx.db().watch(&mut ctx.session.watcher, key);
    }
    ctx.out.ok();
    Ok(())
}

pub(crate) fn unwatch(ctx: &mut Ctx<'_, '_>, _args: Args<'_>) -> Result<(), CommandError> {
    ctx.state.databases.unwatch(&mut ctx.session.watcher);
    ctx.out.ok();
    Ok(())
}
