//! Server commands: COMMAND, CONFIG, INFO, DBSIZE, FLUSHDB/FLUSHALL, TIME.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::connection::REDIS_COMPATIBLE_VERSION;
use super::docs::parse_syntax;
use super::{Args, COMMANDS, CommandError, CommandSpec, Ctx, Flags, lookup};
use crate::engine::Store;
use crate::telemetry;

fn unknown_subcommand(subcommand: &[u8], command: &str) -> CommandError {
    CommandError::Other(format!(
        "ERR unknown subcommand '{}'. Try {command} HELP.",
        String::from_utf8_lossy(subcommand)
    ))
}

fn help(ctx: &mut Ctx<'_, '_>, lines: &[&str]) {
    ctx.out.array(lines.len());
    for line in lines {
        ctx.out.simple(line);
    }
}

pub(crate) fn command(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    if args.is_empty() {
        ctx.out.array(COMMANDS.len());
        COMMANDS.iter().for_each(|spec| command_info(ctx, spec));
        return Ok(());
    }
    let subcommand = args.bytes()?;
    match subcommand.to_ascii_lowercase().as_slice() {
        b"count" if args.is_empty() => ctx.out.integer(i64::try_from(COMMANDS.len()).unwrap_or(i64::MAX)),
        b"count" => return Err(CommandError::WrongArity("command|count")),
        b"list" if args.is_empty() => {
            ctx.out.array(COMMANDS.len());
            COMMANDS.iter().for_each(|spec| ctx.out.bulk(spec.name.as_bytes()));
        }
        b"list" => return Err(CommandError::Syntax),
        b"info" => {
            let names = args.rest();
            if names.is_empty() {
                ctx.out.array(COMMANDS.len());
                COMMANDS.iter().for_each(|spec| command_info(ctx, spec));
            } else {
                ctx.out.array(names.len());
                for name in names {
                    match lookup(name) {
                        Some((_, spec)) => command_info(ctx, spec),
                        None => ctx.out.null(),
                    }
                }
            }
        }
        b"docs" => {
            let names = args.rest();
            let specs: Vec<&CommandSpec> = if names.is_empty() {
                COMMANDS.iter().collect()
            } else {
                names.iter().filter_map(|name| lookup(name).map(|(_, spec)| spec)).collect()
            };
            ctx.out.map(specs.len());
            specs.into_iter().for_each(|spec| command_docs(ctx, spec));
        }
        b"help" => help(
            ctx,
            &[
                "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "(no subcommand)",
                "    Return details about all commands.",
                "COUNT",
                "    Return the total number of commands in this server.",
                "LIST",
                "    Return a list of all commands in this server.",
                "INFO [<command-name> ...]",
                "    Return details about multiple commands.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple commands.",
                "HELP",
                "    Print this help.",
            ],
        ),
        _ => return Err(unknown_subcommand(subcommand, "COMMAND")),
    }
    Ok(())
}

/// ACL categories, derived from the command's group and flags as Redis assigns them.
fn acl_categories(spec: &CommandSpec) -> Vec<&'static str> {
    let mut categories = vec![match spec.group {
        "string" => "@string",
        "generic" => "@keyspace",
        "connection" => "@connection",
        _ => "@admin",
    }];
    if spec.flags.contains(Flags::WRITE) {
        categories.push("@write");
    }
    if spec.flags.contains(Flags::READONLY) {
        categories.push("@read");
    }
    categories.push(if spec.flags.contains(Flags::FAST) { "@fast" } else { "@slow" });
    if spec.flags.contains(Flags::ADMIN) {
        categories.push("@dangerous");
    }
    categories
}

/// One COMMAND INFO entry, in Redis 7's ten-field layout.
fn command_info(ctx: &mut Ctx<'_, '_>, spec: &CommandSpec) {
    ctx.out.array(10);
    ctx.out.bulk(spec.name.as_bytes());
    ctx.out.integer(i64::from(spec.arity));
    let flags: Vec<_> = spec.flags.names().collect();
    ctx.out.set(flags.len());
    flags.iter().for_each(|flag| ctx.out.simple(flag));
    ctx.out.integer(i64::from(spec.first_key));
    ctx.out.integer(i64::from(spec.last_key));
    ctx.out.integer(i64::from(spec.key_step));
    let categories = acl_categories(spec);
    ctx.out.set(categories.len());
    categories.iter().for_each(|category| ctx.out.simple(category));
    // Tips, key specifications and subcommands: cstore reports none.
    for _ in 0..3 {
        ctx.out.array(0);
    }
}

/// One COMMAND DOCS entry: name, then a map of its documentation, with `arguments` (what
/// redis-cli builds its hints from) when the command takes any.
fn command_docs(ctx: &mut Ctx<'_, '_>, spec: &CommandSpec) {
    let arguments = parse_syntax(spec.syntax);
    ctx.out.bulk(spec.name.as_bytes());
    ctx.out.map(4 + usize::from(!arguments.is_empty()));
    for (field, value) in
        [("summary", spec.summary), ("since", spec.since), ("group", spec.group), ("complexity", spec.complexity)]
    {
        ctx.out.bulk(field.as_bytes());
        ctx.out.bulk(value.as_bytes());
    }
    if !arguments.is_empty() {
        ctx.out.bulk(b"arguments");
        ctx.out.array(arguments.len());
        arguments.iter().for_each(|argument| argument.write(ctx.out));
    }
}

pub(crate) fn config(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let subcommand = args.bytes()?;
    match subcommand.to_ascii_lowercase().as_slice() {
        b"get" => {
            let patterns = args.rest();
            if patterns.is_empty() {
                return Err(CommandError::WrongArity("config|get"));
            }
            let values = ctx.state.settings.config_get(patterns);
            ctx.out.map(values.len());
            for (name, value) in values {
                ctx.out.bulk(name.as_bytes());
                ctx.out.bulk(value.as_bytes());
            }
        }
        b"set" => {
            let rest = args.rest();
            // Like Redis: fewer than one pair is an arity error, an unpaired name a syntax error.
            if rest.len() < 2 {
                return Err(CommandError::WrongArity("config|set"));
            }
            if !rest.len().is_multiple_of(2) {
                return Err(CommandError::Syntax);
            }
            let pairs: Vec<(&[u8], &[u8])> = rest.chunks_exact(2).map(|p| (p[0], p[1])).collect();
            ctx.state.settings.config_set(&pairs).map_err(CommandError::Other)?;
            ctx.state.databases.set_encoding_limits(ctx.state.settings.encoding_limits());
            // +OK means accepted: a strategy or shard change migrates in the background, in a
            // span that links to this command's, when this one is traced.
            ctx.state.reconfigurer.settings_changed(telemetry::propagation::current_span_context());
            ctx.state.aof.settings_changed();
            ctx.out.ok();
        }
        b"help" => help(
            ctx,
            &[
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "HELP",
                "    Print this help.",
            ],
        ),
        _ => return Err(unknown_subcommand(subcommand, "CONFIG")),
    }
    Ok(())
}

pub(crate) fn info(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let requested: Vec<String> = args.rest().iter().map(|s| String::from_utf8_lossy(s).to_ascii_lowercase()).collect();
    let text = ctx.state.info(&requested);
    ctx.out.verbatim("txt", text.as_bytes());
    Ok(())
}

pub(crate) fn dbsize(ctx: &mut Ctx<'_, '_>, _args: Args<'_>) -> Result<(), CommandError> {
    ctx.out.integer(i64::try_from(ctx.db().len()).unwrap_or(i64::MAX));
    Ok(())
}

/// SWAPDB: run with every database held (the command is exclusive), so no client sees it
/// half done, and logged as itself.
pub(crate) fn swapdb(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let a = args.integer().map_err(|_| invalid_swap_index("first"))?;
    let b = args.integer().map_err(|_| invalid_swap_index("second"))?;
    let (Ok(a), Ok(b)) = (usize::try_from(a), usize::try_from(b)) else {
        return Err(CommandError::Other("ERR DB index is out of range".into()));
    };
    let databases = &ctx.state.databases;
    ctx.state
        .aof
        .swap(&mut ctx.session.aof_wait, a, b, || databases.swap(a, b))
        .map_err(|error| CommandError::Other(format!("ERR {error}")))?;
    ctx.out.ok();
    Ok(())
}

fn invalid_swap_index(which: &str) -> CommandError {
    CommandError::Other(format!("ERR invalid {which} DB index"))
}

pub(crate) fn flushdb(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    let removed = flush(ctx, args, Some(ctx.session.db()))?;
    ctx.state.persistence.flushed(removed);
    Ok(())
}

/// FLUSHALL also saves the empty store when save rules are set, as Redis 7 does, so that a
/// restart does not bring the flushed keys back from the last snapshot.
pub(crate) fn flushall(ctx: &mut Ctx<'_, '_>, args: Args<'_>) -> Result<(), CommandError> {
    let removed = flush(ctx, args, None)?;
    ctx.state.persistence.flushed_all(removed);
    Ok(())
}

/// Empties database `db`, or every one (`None`); returns how many keys went.
fn flush(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>, db: Option<usize>) -> Result<usize, CommandError> {
    // ASYNC and SYNC are accepted; values held by readers are freed when released either way.
    match args.option() {
        None => {}
        Some(mode) if matches!(mode.as_str(), "ASYNC" | "SYNC") => args.finish()?,
        Some(_) => return Err(CommandError::Syntax),
    }
    let databases = &ctx.state.databases;
    let removed = ctx.state.aof.flush(&mut ctx.session.aof_wait, db, || match db {
        // A database never used has nothing to remove: it is not created for that.
        Some(number) => databases.existing(number).map_or(0, Store::clear),
        None => databases.clear(),
    });
    ctx.out.ok();
    Ok(removed)
}

pub(crate) fn time(ctx: &mut Ctx<'_, '_>, _args: Args<'_>) -> Result<(), CommandError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    ctx.out.array(2);
    ctx.out.bulk(now.as_secs().to_string().as_bytes());
    ctx.out.bulk(now.subsec_micros().to_string().as_bytes());
    Ok(())
}

/// Formats INFO's `name:value` lines; a helper so that sections read as data.
pub(crate) struct InfoSection {
    text: String,
}

impl InfoSection {
    pub(crate) fn new(title: &str) -> Self {
        InfoSection { text: format!("# {title}\r\n") }
    }

    pub(crate) fn field(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        let _ = write!(self.text, "{name}:{value}\r\n");
        self
    }

    pub(crate) fn finish(self) -> String {
        self.text
    }
}

/// The Redis version INFO reports, for clients that enable features by version.
pub(crate) fn redis_version() -> &'static str {
    REDIS_COMPATIBLE_VERSION
}
