//! SAVE, BGSAVE, LASTSAVE and SHUTDOWN, with Redis 7's replies and errors.

use super::{Args, CommandError, Ctx};
use crate::server::persistence::ALREADY_IN_PROGRESS;

pub(crate) fn save(ctx: &mut Ctx<'_, '_>, _args: Args<'_>) -> Result<(), CommandError> {
    match ctx.state.persistence.save() {
        Err(_) => Err(CommandError::Other(ALREADY_IN_PROGRESS.to_owned())),
        Ok(Ok(_)) => {
            ctx.out.ok();
            Ok(())
        }
        // Redis answers a bare -ERR; the reason is in the log, as Redis's is.
        Ok(Err(_)) => Err(CommandError::Other("ERR".to_owned())),
    }
}

pub(crate) fn bgsave(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let schedule = match args.option() {
        None => false,
        Some(option) if option.as_str() == "SCHEDULE" => true,
        Some(_) => return Err(CommandError::Syntax),
    };
    args.finish()?;
    let persistence = &ctx.state.persistence;
    match persistence.background_save() {
        Ok(()) => ctx.out.simple("Background saving started"),
        Err(_) if schedule => {
            persistence.schedule();
            ctx.out.simple("Background saving scheduled");
        }
        Err(_) => return Err(CommandError::Other(ALREADY_IN_PROGRESS.to_owned())),
    }
    Ok(())
}

/// BGREWRITEAOF, with Redis 7's replies. A BGSAVE under way does not refuse it: the rewrite
/// takes its cut once the save's walk is done (Redis answers "scheduled" then; here the
/// rewrite has started and waits).
pub(crate) fn bgrewriteaof(ctx: &mut Ctx<'_, '_>, _args: Args<'_>) -> Result<(), CommandError> {
    match ctx.state.aof.background_rewrite() {
        Ok(true) => ctx.out.simple("Background append only file rewriting started"),
        Ok(false) => {
            return Err(CommandError::Other(
                "ERR Background append only file rewriting already in progress".to_owned(),
            ));
        }
        Err(error) => return Err(CommandError::Other(error)),
    }
    Ok(())
}

pub(crate) fn lastsave(ctx: &mut Ctx<'_, '_>, _args: Args<'_>) -> Result<(), CommandError> {
    ctx.out.integer(i64::try_from(ctx.state.persistence.last_save_unix()).unwrap_or(i64::MAX));
    Ok(())
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]: stops the server as SIGTERM does (connections are
/// drained, then the final save runs), so nothing acknowledged before it is lost. No reply:
/// the connection closes, as with Redis.
pub(crate) fn shutdown(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let mut save = None;
    while let Some(option) = args.option() {
        match option.as_str() {
            "NOSAVE" | "SAVE" if save.is_some() => return Err(CommandError::Syntax),
            "NOSAVE" => save = Some(false),
            "SAVE" => save = Some(true),
            // Nothing to skip waiting for (no replicas) and nothing to force past.
            "NOW" | "FORCE" => {}
            "ABORT" => return Err(CommandError::Other("ERR No shutdown in progress.".to_owned())),
            _ => return Err(CommandError::Syntax),
        }
    }
    tracing::info!(save = ?save, "SHUTDOWN asked by a client");
    *ctx.state.shutdown.save.lock() = save;
    ctx.state.shutdown.requested.notify_one();
    ctx.session.closing = true;
    Ok(())
}
