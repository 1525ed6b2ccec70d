//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT.

use std::time::Instant;

use bytes::Bytes;

use super::{Args, CommandError, Ctx};
use crate::server::reply::Protocol;
use crate::telemetry;

/// The Redis version whose behaviour cstore follows; reported where clients look for one.
pub(crate) const REDIS_COMPATIBLE_VERSION: &str = "7.0.0";

pub(crate) fn ping(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    match args.remaining() {
        0 => ctx.out.simple("PONG"),
        1 => ctx.out.bulk(args.bytes()?),
        _ => return Err(CommandError::WrongArity("ping")),
    }
    Ok(())
}

pub(crate) fn echo(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    ctx.out.bulk(args.bytes()?);
    Ok(())
}

pub(crate) fn hello(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let mut protocol = ctx.session.protocol();
    if !args.is_empty() {
        protocol = match args.integer() {
            Ok(2) => Protocol::Resp2,
            Ok(3) => Protocol::Resp3,
            Ok(_) => return Err(CommandError::Other("NOPROTO unsupported protocol version".into())),
            Err(_) => {
                return Err(CommandError::Other("ERR Protocol version is not an integer or out of range".into()));
            }
        };
    }
    let (mut credentials, mut name) = (None, None);
    while !args.is_empty() {
        let option = args.bytes()?;
        if option.eq_ignore_ascii_case(b"AUTH") && args.remaining() >= 2 {
            credentials = Some((args.bytes()?, args.bytes()?));
        } else if option.eq_ignore_ascii_case(b"SETNAME") && !args.is_empty() {
            name = Some(args.bytes()?);
        } else {
            let option = String::from_utf8_lossy(option);
            return Err(CommandError::Other(format!("ERR Syntax error in HELLO option '{option}'")));
        }
    }
    match credentials {
        Some((user, password)) => authenticate(ctx, Some(user), password)?,
        None if !ctx.session.is_authenticated(&ctx.state.settings) => {
            return Err(CommandError::Other(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> \
                 AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol \
                 version at the same time"
                    .into(),
            ));
        }
        None => {}
    }
    if let Some(name) = name {
        set_client_name(ctx, name)?;
    }
    ctx.session.set_protocol(protocol);
    // The reply is encoded with the protocol just chosen, as Redis does.
    ctx.out.set_protocol(protocol);
    ctx.out.map(7);
    ctx.out.bulk(b"server");
    ctx.out.bulk(b"redis");
    ctx.out.bulk(b"version");
    ctx.out.bulk(REDIS_COMPATIBLE_VERSION.as_bytes());
    ctx.out.bulk(b"proto");
    ctx.out.integer(if protocol == Protocol::Resp3 { 3 } else { 2 });
    ctx.out.bulk(b"id");
    ctx.out.integer(i64::try_from(ctx.session.info.id).unwrap_or(i64::MAX));
    ctx.out.bulk(b"mode");
    ctx.out.bulk(b"standalone");
    ctx.out.bulk(b"role");
    ctx.out.bulk(b"master");
    ctx.out.bulk(b"modules");
    ctx.out.array(0);
    Ok(())
}

pub(crate) fn auth(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let (user, password) = match args.remaining() {
        1 => (None, args.bytes()?),
        2 => (Some(args.bytes()?), args.bytes()?),
        _ => return Err(CommandError::Syntax),
    };
    authenticate(ctx, user, password)?;
    ctx.out.ok();
    Ok(())
}

/// Checks credentials against `requirepass` for the only user there is, `default`.
fn authenticate(ctx: &mut Ctx<'_, '_>, user: Option<&[u8]>, password: &[u8]) -> Result<(), CommandError> {
    let user_is_default = user.is_none_or(|u| u == b"default");
    let settings = &ctx.state.settings;
    let accepted = match settings.auth_required() {
        false if user.is_none() => {
            return Err(CommandError::Other(
                "ERR AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?"
                    .into(),
            ));
        }
        false => user_is_default,
        true => user_is_default && settings.password_matches(password),
    };
    if !accepted {
        return Err(CommandError::Other("WRONGPASS invalid username-password pair or user is disabled.".into()));
    }
    ctx.session.authenticated = true;
    Ok(())
}

pub(crate) fn select(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let number = database_number(ctx, &mut args)?;
    ctx.session.select(number);
    ctx.out.ok();
    Ok(())
}

/// A database number argument: an integer that fits a C `int` (Redis parses it with
/// `getIntFromObjectOrReply`, whose error this is), and one of the server's databases.
pub(crate) fn database_number(ctx: &Ctx<'_, '_>, args: &mut Args<'_>) -> Result<usize, CommandError> {
    let number = i32::try_from(args.integer()?).map_err(|_| {
        CommandError::Other("ERR value is out of range, value must between -2147483648 and 2147483647".into())
    })?;
    usize::try_from(number)
        .ok()
        .filter(|number| *number < ctx.state.databases.count())
        .ok_or_else(|| CommandError::Other("ERR DB index is out of range".into()))
}

pub(crate) fn quit(ctx: &mut Ctx<'_, '_>, _args: Args<'_>) -> Result<(), CommandError> {
    ctx.session.closing = true;
    ctx.out.ok();
    Ok(())
}

pub(crate) fn reset(ctx: &mut Ctx<'_, '_>, _args: Args<'_>) -> Result<(), CommandError> {
    ctx.session.end_transaction();
    ctx.state.databases.unwatch(&mut ctx.session.watcher);
    ctx.session.select(0);
    ctx.session.set_protocol(Protocol::Resp2);
    ctx.out.set_protocol(Protocol::Resp2);
    *ctx.session.info.name.lock() = None;
    ctx.session.authenticated = !ctx.state.settings.auth_required();
    ctx.out.simple("RESET");
    Ok(())
}

pub(crate) fn client(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let subcommand = args.bytes()?;
    let name = String::from_utf8_lossy(subcommand).to_ascii_lowercase();
    let arity_error = |full: &'static str| CommandError::WrongArity(full);
    match name.as_str() {
        "id" if args.is_empty() => ctx.out.integer(i64::try_from(ctx.session.info.id).unwrap_or(i64::MAX)),
        "id" => return Err(arity_error("client|id")),
        "getname" if args.is_empty() => match ctx.session.info.name.lock().as_ref() {
            Some(name) => ctx.out.bulk(name),
            None => ctx.out.null(),
        },
        "getname" => return Err(arity_error("client|getname")),
        "setname" if args.remaining() == 1 => {
            set_client_name(ctx, args.bytes()?)?;
            ctx.out.ok();
        }
        "setname" => return Err(arity_error("client|setname")),
        "setinfo" if args.remaining() == 2 => set_client_info(ctx, args.bytes()?, args.bytes()?)?,
        "setinfo" => return Err(arity_error("client|setinfo")),
        "info" if args.is_empty() => {
            let line = ctx.session.info.describe(Instant::now()) + "\n";
            ctx.out.verbatim("txt", line.as_bytes());
        }
        "info" => return Err(arity_error("client|info")),
        "traceparent" if args.remaining() == 1 => {
            let traceparent = args.bytes()?;
            let parent = telemetry::propagation::parse_traceparent(traceparent).ok_or_else(|| {
                CommandError::Other(format!(
                    "ERR invalid traceparent '{}': expected W3C Trace Context \
                     00-<32 hex digits trace id>-<16 hex digits parent id>-<2 hex digits flags>, lowercase, \
                     ids not all zero",
                    String::from_utf8_lossy(traceparent).chars().take(128).collect::<String>()
                ))
            })?;
            ctx.session.trace_parent = Some(parent);
            ctx.out.ok();
        }
        "traceparent" => return Err(arity_error("client|traceparent")),
        "no-evict" if args.remaining() == 1 => {
            let switch = args.bytes()?;
            let on = if switch.eq_ignore_ascii_case(b"on") {
                true
            } else if switch.eq_ignore_ascii_case(b"off") {
                false
            } else {
                return Err(CommandError::Syntax);
            };
            ctx.session.info.set_no_evict(on);
            ctx.out.ok();
        }
        "no-evict" => return Err(arity_error("client|no-evict")),
        "list" => client_list(ctx, args)?,
        "help" => {
            let lines = [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME",
                "    Return the name of the current connection.",
                "ID",
                "    Return the ID of the current connection.",
                "INFO",
                "    Return information about the current client connection.",
                "LIST [TYPE NORMAL] [ID <id> [<id> ...]]",
                "    Return information about client connections.",
                "NO-EVICT (ON|OFF)",
                "    Protect current client connection from eviction.",
                "SETINFO <LIB-NAME|LIB-VER> <value>",
                "    Set client library name or version.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
                "TRACEPARENT <traceparent>",
                "    Trace the next command as part of the caller's trace (a W3C Trace Context",
                "    traceparent): its span is a child of <traceparent>, and it is traced when",
                "    <traceparent> is sampled. A cstore extension.",
                "HELP",
                "    Print this help.",
            ];
            ctx.out.array(lines.len());
            for line in lines {
                ctx.out.simple(line);
            }
        }
        _ => {
            return Err(CommandError::Other(format!(
                "ERR unknown subcommand '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(subcommand)
            )));
        }
    }
    Ok(())
}

fn client_list(ctx: &mut Ctx<'_, '_>, mut args: Args<'_>) -> Result<(), CommandError> {
    let mut ids: Option<Vec<u64>> = None;
    while let Some(option) = args.option() {
        match option.as_str() {
            "TYPE" => {
                let kind = args.bytes()?;
                if !kind.eq_ignore_ascii_case(b"normal") {
                    // cstore has only normal clients: replicas, pubsub and masters are none.
                    if ["replica", "master", "pubsub", "slave"].iter().any(|k| kind.eq_ignore_ascii_case(k.as_bytes()))
                    {
                        ids = Some(Vec::new());
                    } else {
                        return Err(CommandError::Other(format!(
                            "ERR Unknown client type '{}'",
                            String::from_utf8_lossy(kind)
                        )));
                    }
                }
            }
            "ID" => {
                if args.is_empty() {
                    return Err(CommandError::Syntax);
                }
                let mut wanted = Vec::new();
                while !args.is_empty() {
                    // As in Redis 7.0, any integer is an id; one no client has (0, -1) matches none.
                    let id = args.integer().map_err(|_| CommandError::Other("ERR Invalid client ID".into()))?;
                    wanted.extend(u64::try_from(id).ok());
                }
                ids = Some(wanted);
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    let now = Instant::now();
    let mut text = String::new();
    for client in ctx.state.clients.all() {
        if ids.as_ref().is_none_or(|ids| ids.contains(&client.id)) {
            text.push_str(&client.describe(now));
            text.push('\n');
        }
    }
    ctx.out.verbatim("txt", text.as_bytes());
    Ok(())
}

/// Redis accepts names and library fields of printable ASCII without spaces.
fn is_printable_token(value: &[u8]) -> bool {
    value.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn set_client_name(ctx: &mut Ctx<'_, '_>, name: &[u8]) -> Result<(), CommandError> {
    if !is_printable_token(name) {
        return Err(CommandError::Other(
            "ERR Client names cannot contain spaces, newlines or special characters.".into(),
        ));
    }
    // Arguments are borrowed from the read buffer for one request: keep a copy.
    *ctx.session.info.name.lock() = (!name.is_empty()).then(|| Bytes::copy_from_slice(name));
    Ok(())
}

fn set_client_info(ctx: &mut Ctx<'_, '_>, attribute: &[u8], value: &[u8]) -> Result<(), CommandError> {
    let (field, label) = if attribute.eq_ignore_ascii_case(b"lib-name") {
        (&ctx.session.info.lib_name, "lib-name")
    } else if attribute.eq_ignore_ascii_case(b"lib-ver") {
        (&ctx.session.info.lib_ver, "lib-ver")
    } else {
        return Err(CommandError::Other(format!("ERR Unrecognized option '{}'", String::from_utf8_lossy(attribute))));
    };
    if !is_printable_token(value) {
        return Err(CommandError::Other(format!("ERR {label} cannot contain spaces, newlines or special characters.")));
    }
    *field.lock() = (!value.is_empty()).then(|| Bytes::copy_from_slice(value));
    ctx.out.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_are_printable_tokens() {
        assert!(is_printable_token(b"worker-1"));
        assert!(!is_printable_token(b"has space"));
        assert!(!is_printable_token(b"new\nline"));
    }
}
