//! Startup load of an append-only directory: manifest, then the base (RDB preamble or AOF),
//! then every incremental file, as Redis's `loadAppendOnlyFiles`.
//!
//! Nothing expires while loading, as in Redis (`keyIsExpired` is false while loading): the
//! files are replayed into scratch databases whose clock stands at the epoch, so a command
//! that reads a key (INCR, APPEND, PEXPIREAT from redis-server's files) sees it as the
//! writer did; the result then goes into the server's databases, where deadlines passed in
//! the meantime take effect. The scratch databases hold the data set once more during the
//! load.
//!
//! Databases as Redis's loader has them: each file is replayed by a client of its own, so it
//! starts in database 0 and follows its SELECTs (one queued in MULTI at its EXEC, in order);
//! SWAPDB, MOVE, COPY ... DB, FLUSHDB and FLUSHALL act on the databases they name. A
//! database beyond `databases` stops the load (Redis's "DB index is out of range", which its
//! loader would ignore and go on writing into the wrong database).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::manifest::{AofFile, Manifest};
use super::resp::{CommandReader, ReadError};
use crate::engine::{
    Clock, Databases, ExpireCondition, ManualClock, SetCondition, SetExpiry, SetOptions, SnapshotError, Store,
    TtlUpdate, Value, parse_float, parse_integer,
};
use crate::persistence::progress::LoadProgress;
use crate::persistence::rdb::{self, LoadOptions, RdbError, printable_key};

#[derive(Debug, thiserror::Error)]
pub enum AofLoadError {
    #[error("cannot read the AOF manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("cannot read the append only file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "bad file format reading the append only file {path}: {reason}; the file is untouched: make a \
         backup of it, then run redis-check-aof --fix on the manifest"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot load the RDB preamble of {path}: {source}")]
    Rdb { path: PathBuf, source: RdbError },
    #[error(
        "the append only file {path} uses database {db} at byte {offset} ({command}), but this server \
         has `databases` {databases}: DB index is out of range. The file was written by a server with \
         more databases and is untouched: start with `databases` {needed} or more to load it",
        needed = db.saturating_add(1)
    )]
    OtherDatabase { path: PathBuf, offset: u64, command: String, db: u64, databases: usize },
}

/// What a load found.
#[derive(Debug, Default)]
pub struct AofLoadReport {
    pub files: usize,
    pub commands: u64,
    /// Keys loaded, over every database.
    pub keys: u64,
    /// The file whose torn tail was cut, and how many bytes were dropped.
    pub truncated: Option<(PathBuf, u64)>,
}

/// Loads `dir` (whose manifest is `manifest_name`) into `databases`, counting what it reads
/// in `progress`. `None` when there is no manifest. Each file's commands start in database 0
/// and follow its SELECTs; a database beyond `databases.count()` stops the load (the RDB
/// preamble's keys of one are skipped instead under `rdb-skip-other-dbs`). A torn tail of the
/// last incremental file is cut off (with the caller's warning, from the report); anything
/// else wrong stops the load with the files untouched.
pub fn load(
    dir: &Path,
    manifest_name: &str,
    databases: &Databases,
    rdb_options: LoadOptions,
    progress: &LoadProgress,
) -> Result<Option<(Manifest, AofLoadReport)>, AofLoadError> {
    let manifest_path = dir.join(manifest_name);
    let text = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(AofLoadError::Manifest { path: manifest_path, reason: error.to_string() }),
    };
    let manifest = Manifest::parse(&text).map_err(|reason| AofLoadError::Manifest { path: manifest_path, reason })?;
    let scratch = Store::builder()
        .clock(Clock::Manual(ManualClock::new(0)))
        .build_databases(databases.count())
        .map_err(|error| AofLoadError::Manifest { path: dir.to_owned(), reason: error.to_string() })?;
    // The collections built here move to `databases` as they are: encode them by its thresholds.
    scratch.set_encoding_limits(databases.encoding_limits());
    let mut report = AofLoadReport::default();
    let now_ms = databases.now_ms();
    let files: Vec<&AofFile> = manifest.base.iter().chain(&manifest.incrs).collect();
    for file in &files {
        progress.add_total(std::fs::metadata(dir.join(&file.name)).map_or(0, |meta| meta.len()));
    }
    for (index, file) in files.iter().enumerate() {
        let path = dir.join(&file.name);
        let last = index + 1 == files.len();
        let opened = File::open(&path).map_err(|source| AofLoadError::Io { path: path.clone(), source })?;
        let mut input = BufReader::with_capacity(1 << 16, progress.reader(opened));
        let is_rdb =
            input.fill_buf().map_err(|source| AofLoadError::Io { path: path.clone(), source })?.starts_with(b"REDIS");
        if is_rdb {
            // Keys expired by now are kept while loading, as Redis does for a preamble.
            let options = LoadOptions { now_ms: 0, databases: scratch.count(), ..rdb_options };
            rdb::load(input, &options, &scratch.encoding_limits(), |key| {
                let store = scratch.get(key.db).ok_or_else(|| format!("database {} does not exist", key.db))?;
                store.put(
                    &key.key,
                    key.value.clone(),
                    SetOptions { expiry: expiry(key.expires_at_ms), ..SetOptions::default() },
                );
                Ok(())
            })
            .map_err(|source| AofLoadError::Rdb { path: path.clone(), source })?;
        } else {
            report.commands += replay(input, &scratch, now_ms, &path, last, &mut report)?;
        }
        report.files += 1;
    }
    for (number, cut) in scratch.snapshot() {
        let store = databases.get(number).expect("as many scratch databases as `databases`");
        let moved = cut.for_each(|entry| {
            store.put(
                entry.key,
                entry.value.clone(),
                SetOptions { expiry: expiry(entry.expires_at_ms), ..SetOptions::default() },
            );
            Ok::<(), io::Error>(())
        });
        match moved {
            Ok(moved) => report.keys += moved.keys,
            Err(SnapshotError::Flushed | SnapshotError::Emit(_)) => {
                unreachable!("nobody else writes the scratch databases")
            }
        }
    }
    Ok(Some((manifest, report)))
}

/// A command's arguments, its name first.
type Command = Vec<Vec<u8>>;

/// Replays one AOF file into `databases`, from database 0; returns how many commands it
/// applied.
fn replay(
    input: impl BufRead,
    databases: &Databases,
    now_ms: u64,
    path: &Path,
    last: bool,
    report: &mut AofLoadReport,
) -> Result<u64, AofLoadError> {
    let mut reader = CommandReader::new(input);
    let mut applied = 0;
    // The database commands apply to, changed by SELECT (a queued one at its EXEC, in order).
    let mut db = 0usize;
    // Commands between MULTI and EXEC, applied at EXEC: the MULTI's offset, and each
    // command with its own.
    let mut transaction: Option<(u64, Vec<(u64, Command)>)> = None;
    let corrupt = |reason: String| AofLoadError::Corrupt { path: path.to_owned(), reason };
    let failed = |offset: u64, command: &[Vec<u8>], error: ApplyError| match error {
        ApplyError::Invalid(reason) => corrupt(format!("at byte {offset}: {reason}")),
        ApplyError::OutOfRange(db) => AofLoadError::OtherDatabase {
            path: path.to_owned(),
            offset,
            command: shown_command(command),
            db,
            databases: databases.count(),
        },
    };
    loop {
        let start = reader.offset();
        let command = match reader.next_command() {
            Ok(Some(command)) => command,
            Ok(None) => break,
            Err(ReadError::Truncated { offset }) if last => {
                cut_tail(path, transaction.as_ref().map_or(offset, |(at, _)| *at), report)?;
                return Ok(applied);
            }
            Err(ReadError::Truncated { offset }) => {
                return Err(corrupt(format!("unexpected end of file at byte {offset} of a file that is not the last")));
            }
            Err(ReadError::Corrupt { offset, reason }) => return Err(corrupt(format!("at byte {offset}: {reason}"))),
            Err(ReadError::Io(source)) => return Err(AofLoadError::Io { path: path.to_owned(), source }),
        };
        let name = command[0].to_ascii_uppercase();
        match (name.as_slice(), &mut transaction) {
            (b"MULTI", None) => transaction = Some((start, Vec::new())),
            (b"EXEC", Some(_)) => {
                for (at, queued) in transaction.take().map(|(_, queued)| queued).unwrap_or_default() {
                    apply(databases, &mut db, now_ms, &queued).map_err(|error| failed(at, &queued, error))?;
                    applied += 1;
                }
            }
            (b"MULTI" | b"EXEC", _) => return Err(corrupt(format!("unbalanced MULTI/EXEC at byte {start}"))),
            (_, Some((_, queued))) => queued.push((start, command)),
            (_, None) => {
                apply(databases, &mut db, now_ms, &command).map_err(|error| failed(start, &command, error))?;
                applied += 1;
            }
        }
    }
    if let Some((start, _)) = transaction {
        // A MULTI never closed: the writer died inside a transaction (Redis reverts it too).
        if last {
            cut_tail(path, start, report)?;
        } else {
            return Err(corrupt(format!("a MULTI at byte {start} without EXEC")));
        }
    }
    Ok(applied)
}

/// Cuts `path` at `offset`, as Redis's `aof-load-truncated yes` does.
fn cut_tail(path: &Path, offset: u64, report: &mut AofLoadReport) -> Result<(), AofLoadError> {
    let io_error = |source| AofLoadError::Io { path: path.to_owned(), source };
    let file = OpenOptions::new().write(true).open(path).map_err(io_error)?;
    let len = file.metadata().map_err(io_error)?.len();
    file.set_len(offset).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    report.truncated = Some((path.to_owned(), len - offset));
    Ok(())
}

/// A key's deadline as a write sets it.
fn expiry(deadline: Option<u64>) -> SetExpiry {
    deadline.map_or(SetExpiry::Clear, SetExpiry::At)
}

/// Deadlines in the commands' units: seconds or milliseconds, from now or absolute.
fn deadline(now_ms: u64, raw: &[u8], millis: bool, absolute: bool) -> Result<u64, String> {
    let value = parse_integer(raw).ok_or_else(|| format!("{:?} is not an integer", raw.escape_ascii().to_string()))?;
    let ms = if millis { Some(value) } else { value.checked_mul(1000) };
    let base = if absolute { 0 } else { i64::try_from(now_ms).unwrap_or(i64::MAX) };
    let at = ms.and_then(|ms| ms.checked_add(base)).ok_or("an expiry out of range")?;
    Ok(u64::try_from(at).unwrap_or(0))
}

/// Why a command could not be replayed.
enum ApplyError {
    /// Not a command cstore replays, or not as Redis writes it.
    Invalid(String),
    /// A database number beyond the server's `databases` (Redis's "DB index is out of range").
    OutOfRange(u64),
}

impl From<String> for ApplyError {
    fn from(reason: String) -> Self {
        ApplyError::Invalid(reason)
    }
}

impl From<&str> for ApplyError {
    fn from(reason: &str) -> Self {
        ApplyError::Invalid(reason.to_owned())
    }
}

/// A command as error messages show it: its first arguments, printable.
fn shown_command(command: &[Vec<u8>]) -> String {
    let shown: Vec<String> = command.iter().take(4).map(|arg| printable_key(&arg[..arg.len().min(64)])).collect();
    shown.join(" ")
}

/// A database number argument (SELECT, SWAPDB, MOVE, COPY ... DB) of `databases`.
fn database_number(databases: &Databases, raw: &[u8]) -> Result<usize, ApplyError> {
    let number = parse_integer(raw).ok_or("a database number that is not an integer")?;
    let number = u64::try_from(number).map_err(|_| format!("database {number}: DB index is out of range"))?;
    usize::try_from(number).ok().filter(|n| *n < databases.count()).ok_or(ApplyError::OutOfRange(number))
}

/// Applies one command to database `db` of `databases`, with Redis's semantics for the
/// writes it logs; SELECT changes `db`. Any other command is an error naming it.
fn apply(databases: &Databases, db: &mut usize, now_ms: u64, command: &[Vec<u8>]) -> Result<(), ApplyError> {
    let name = command[0].to_ascii_uppercase();
    let args: Vec<&[u8]> = command[1..].iter().map(Vec::as_slice).collect();
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("{} with {} arguments", String::from_utf8_lossy(&name), args.len()))
        }
    };
    let integer = |raw: &[u8]| parse_integer(raw).ok_or_else(|| "an argument that is not an integer".to_owned());
    let at_least = |n: usize| {
        if args.len() >= n { Ok(()) } else { Err(format!("{} with too few arguments", String::from_utf8_lossy(&name))) }
    };
    // `db` is always in range: SELECT checks it.
    let store = databases.get(*db).ok_or(ApplyError::OutOfRange(*db as u64))?;
    match name.as_slice() {
        b"SELECT" => {
            arity(1)?;
            *db = database_number(databases, args[0])?;
        }
        b"SWAPDB" => {
            arity(2)?;
            let (a, b) = (database_number(databases, args[0])?, database_number(databases, args[1])?);
            // Held as the server holds them, though nothing else runs on the scratch databases.
            let _every_database = databases.exclusive();
            databases.swap(a, b).map_err(|error| format!("SWAPDB: {error}"))?;
        }
        b"MOVE" => {
            arity(2)?;
            let target = database_number(databases, args[1])?;
            // As Redis: nothing moves onto itself or over an existing key.
            let destination = databases.get(target).ok_or(ApplyError::OutOfRange(target as u64))?;
            if target != *db {
                store.move_to(args[0], destination);
            }
        }
        b"COPY" => {
            at_least(2)?;
            let (mut target, mut replace) = (*db, false);
            let mut options = args[2..].iter();
            while let Some(option) = options.next() {
                match option.to_ascii_uppercase().as_slice() {
                    b"REPLACE" => replace = true,
                    b"DB" => {
                        target = database_number(databases, options.next().ok_or("COPY ... DB without its number")?)?
                    }
                    _ => return Err("COPY with an option cstore does not know".into()),
                }
            }
            let destination = databases.get(target).ok_or(ApplyError::OutOfRange(target as u64))?;
            store.copy_to(args[0], destination, args[1], replace);
        }
        b"SET" => {
            at_least(2)?;
            let mut options = SetOptions::default();
            let mut rest = args[2..].iter();
            while let Some(option) = rest.next() {
                let option = option.to_ascii_uppercase();
                let mut time = |millis, absolute| -> Result<SetExpiry, String> {
                    let raw = rest.next().ok_or("SET: an expiry option without its time")?;
                    Ok(SetExpiry::At(deadline(now_ms, raw, millis, absolute)?))
                };
                match option.as_slice() {
                    b"NX" => options.condition = SetCondition::IfAbsent,
                    b"XX" => options.condition = SetCondition::IfPresent,
                    b"GET" => {}
                    b"KEEPTTL" => options.expiry = SetExpiry::Keep,
                    b"EX" => options.expiry = time(false, false)?,
                    b"PX" => options.expiry = time(true, false)?,
                    b"EXAT" => options.expiry = time(false, true)?,
                    b"PXAT" => options.expiry = time(true, true)?,
                    _ => return Err(format!("SET with option {:?}", String::from_utf8_lossy(&option)).into()),
                }
            }
            store.put(args[0], Value::from(args[1]), options);
        }
        b"SETNX" => {
            arity(2)?;
            let options = SetOptions { condition: SetCondition::IfAbsent, ..SetOptions::default() };
            store.put(args[0], Value::from(args[1]), options);
        }
        b"SETEX" | b"PSETEX" => {
            arity(3)?;
            let at = deadline(now_ms, args[1], name == b"PSETEX", false)?;
            store.put(args[0], Value::from(args[2]), SetOptions { expiry: SetExpiry::At(at), ..SetOptions::default() });
        }
        b"GETSET" => {
            arity(2)?;
            store.put(args[0], Value::from(args[1]), SetOptions::default());
        }
        b"MSET" => {
            if args.is_empty() || !args.len().is_multiple_of(2) {
                return Err("MSET without key value pairs".into());
            }
            for pair in args.chunks_exact(2) {
                store.put(pair[0], Value::from(pair[1]), SetOptions::default());
            }
        }
        b"DEL" | b"UNLINK" | b"GETDEL" => {
            at_least(1)?;
            for key in &args {
                store.delete(key);
            }
        }
        b"INCR" | b"DECR" | b"INCRBY" | b"DECRBY" => {
            let delta = match name.as_slice() {
                b"INCR" | b"DECR" => arity(1).map(|()| 1)?,
                _ => arity(2).and_then(|()| integer(args[1]))?,
            };
            let delta = if name.starts_with(b"DECR") { delta.checked_neg().ok_or("DECRBY overflows")? } else { delta };
            store.incr_by(args[0], delta).map_err(|error| format!("INCRBY: {error}"))?;
        }
        b"INCRBYFLOAT" => {
            arity(2)?;
            let delta = parse_float(args[1]).ok_or("INCRBYFLOAT by a value that is not a float")?;
            store.incr_by_float(args[0], delta).map_err(|error| format!("INCRBYFLOAT: {error}"))?;
        }
        b"APPEND" => {
            arity(2)?;
            store.append(args[0], args[1]).map_err(|error| format!("APPEND: {error}"))?;
        }
        b"SETRANGE" => {
            arity(3)?;
            let offset = usize::try_from(integer(args[1])?).map_err(|_| "SETRANGE at a negative offset")?;
            store.setrange(args[0], offset, args[2]).map_err(|error| format!("SETRANGE: {error}"))?;
        }
        b"EXPIRE" | b"PEXPIRE" | b"EXPIREAT" | b"PEXPIREAT" => {
            at_least(2)?;
            let at = deadline(now_ms, args[1], name.starts_with(b"P"), name.ends_with(b"AT"))?;
            let mut condition = ExpireCondition::default();
            for flag in &args[2..] {
                match flag.to_ascii_uppercase().as_slice() {
                    b"NX" => condition.nx = true,
                    b"XX" => condition.xx = true,
                    b"GT" => condition.gt = true,
                    b"LT" => condition.lt = true,
                    _ => return Err("an EXPIRE flag cstore does not know".into()),
                }
            }
            store.expire_at(args[0], at, condition);
        }
        b"GETEX" => {
            at_least(1)?;
            let update = match args.get(1).map(|o| o.to_ascii_uppercase()).as_deref() {
                None => TtlUpdate::Keep,
                Some(b"PERSIST") => TtlUpdate::Persist,
                Some(unit) => {
                    let raw = args.get(2).ok_or("GETEX without its time")?;
                    let at = match unit {
                        b"EX" => deadline(now_ms, raw, false, false)?,
                        b"PX" => deadline(now_ms, raw, true, false)?,
                        b"EXAT" => deadline(now_ms, raw, false, true)?,
                        b"PXAT" => deadline(now_ms, raw, true, true)?,
                        _ => return Err("GETEX with an option cstore does not know".into()),
                    };
                    TtlUpdate::At(at)
                }
            };
            store.getex(args[0], update).map_err(|error| format!("GETEX: {error}"))?;
        }
        b"PERSIST" => {
            arity(1)?;
            store.persist(args[0]);
        }
        // ASYNC or SYNC: how Redis frees the memory, the same outcome.
        b"FLUSHDB" => {
            store.clear();
        }
        b"FLUSHALL" => {
            databases.clear();
        }
        b"HSET" | b"HMSET" => {
            if args.len() < 3 || args.len().is_multiple_of(2) {
                return Err("HSET without field value pairs".into());
            }
            let pairs: Vec<(&[u8], &[u8])> = args[1..].chunks_exact(2).map(|pair| (pair[0], pair[1])).collect();
            store.hset(args[0], &pairs).map_err(|error| format!("HSET: {error}"))?;
        }
        b"HSETNX" => {
            arity(3)?;
            store.hsetnx(args[0], args[1], args[2]).map_err(|error| format!("HSETNX: {error}"))?;
        }
        b"HDEL" => {
            at_least(2)?;
            store.hdel(args[0], &args[1..]).map_err(|error| format!("HDEL: {error}"))?;
        }
        b"HINCRBY" => {
            arity(3)?;
            store.hincr_by(args[0], args[1], integer(args[2])?).map_err(|error| format!("HINCRBY: {error}"))?;
        }
        b"HINCRBYFLOAT" => {
            arity(3)?;
            let delta = parse_float(args[2]).ok_or("HINCRBYFLOAT by a value that is not a float")?;
            store.hincr_by_float(args[0], args[1], delta).map_err(|error| format!("HINCRBYFLOAT: {error}"))?;
        }
        b"SADD" => {
            at_least(2)?;
            store.sadd(args[0], &args[1..]).map_err(|error| format!("SADD: {error}"))?;
        }
        b"SREM" => {
            at_least(2)?;
            store.srem(args[0], &args[1..]).map_err(|error| format!("SREM: {error}"))?;
        }
        b"SMOVE" => {
            arity(3)?;
            store.smove(args[0], args[1], args[2]).map_err(|error| format!("SMOVE: {error}"))?;
        }
        _ => {
            let shown: String = String::from_utf8_lossy(&name).chars().take(64).collect();
            return Err(format!("the command {shown}, which cstore does not run (a type or feature it lacks)").into());
        }
    }
    Ok(())
}

/// The first bytes of `path`, for the tests.
#[cfg(test)]
fn head(path: &Path, n: usize) -> Vec<u8> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    let _ = File::open(path).and_then(|f| f.take(n as u64).read_to_end(&mut bytes));
    bytes
}

#[cfg(test)]
mod tests {
    use super::super::resp::encode;
    use super::super::{base_name, write_base};
    use super::*;
    use crate::persistence::rdb::{RdbHeader, SaveOptions};
    use crate::persistence::test_support::contents;

    fn write(dir: &Path, name: &str, commands: &[&[&[u8]]]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for command in commands {
            encode(&mut bytes, command);
        }
        std::fs::write(dir.join(name), &bytes).unwrap();
        bytes
    }

    fn options() -> LoadOptions {
        LoadOptions::strict(0)
    }

    fn databases(count: usize) -> Databases {
        Store::builder().build_databases(count).unwrap()
    }

    fn load_into(dir: &Path, databases: &Databases) -> Result<AofLoadReport, AofLoadError> {
        let loaded = load(dir, "a.manifest", databases, options(), &LoadProgress::default())?;
        Ok(loaded.expect("a manifest").1)
    }

    /// String keys as (database, key, value).
    fn strings(databases: &Databases) -> Vec<(usize, String, String)> {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        contents(databases)
            .into_iter()
            .map(|(number, key, value, _)| match value {
                Value::String(value) => (number, text(&key), text(&value)),
                other => panic!("{} is a {}", text(&key), other.encoding()),
            })
            .collect()
    }

    fn owned(rows: &[(usize, &str, &str)]) -> Vec<(usize, String, String)> {
        rows.iter().map(|(number, key, value)| (*number, key.to_string(), value.to_string())).collect()
    }

    #[test]
    fn replays_base_and_incrementals_without_expiring_during_the_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.manifest"),
            "file a.1.base.aof seq 1 type b\nfile a.1.incr.aof seq 1 type i\n",
        )
        .unwrap();
        write(dir.path(), "a.1.base.aof", &[&[b"SELECT", b"0"], &[b"SET", b"n", b"5"], &[b"PEXPIREAT", b"n", b"1000"]]);
        // INCR of a key whose deadline has passed by now: the writer saw it live, so the
        // result keeps the old deadline and is gone after the load, as in Redis.
        write(
            dir.path(),
            "a.1.incr.aof",
            &[&[b"INCR", b"n"], &[b"MULTI"], &[b"SET", b"t", b"x"], &[b"EXEC"], &[b"APPEND", b"t", b"y"]],
        );
        let databases = databases(16);
        let progress = LoadProgress::default();
        let (_, report) = load(dir.path(), "a.manifest", &databases, options(), &progress).unwrap().unwrap();
        // INFO's loading_* fields: every byte of both files counted, read to the end.
        let sizes: u64 = ["a.1.base.aof", "a.1.incr.aof"]
            .iter()
            .map(|name| std::fs::metadata(dir.path().join(name)).unwrap().len())
            .sum();
        assert_eq!((progress.total_bytes(), progress.loaded_bytes()), (sizes, sizes));
        // Both keys are handed over; `n`'s deadline has passed, so the store no longer shows it.
        assert_eq!((report.files, report.commands, report.keys), (2, 6, 2));
        let store = databases.get(0).unwrap();
        assert_eq!(store.get(b"n"), Ok(None));
        assert_eq!(store.get(b"t").unwrap().as_deref(), Some(&b"xy"[..]));
        assert!(report.truncated.is_none());
    }

    #[test]
    fn select_swapdb_flushdb_move_and_copy_replay_as_redis_runs_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.manifest"),
            "file a.1.incr.aof seq 1 type i\nfile a.2.incr.aof seq 2 type i\n",
        )
        .unwrap();
        let deadline = b"4000000000000";
        write(
            dir.path(),
            "a.1.incr.aof",
            &[
                &[b"SELECT", b"0"],
                &[b"SET", b"a", b"in 0"],
                &[b"SELECT", b"3"],
                &[b"SET", b"a", b"in 3"],
                &[b"SET", b"b", b"moved"],
                &[b"PEXPIREAT", b"b", deadline],
                &[b"HSET", b"h", b"f", b"v"],
                // To database 5 with its deadline; not over database 0's `a`; not onto itself.
                &[b"MOVE", b"b", b"5"],
                &[b"MOVE", b"a", b"0"],
                &[b"MOVE", b"h", b"3"],
                &[b"MOVE", b"missing", b"6"],
                // A copy elsewhere, here, and not over an existing key unless REPLACE.
                &[b"COPY", b"a", b"c", b"DB", b"7"],
                &[b"COPY", b"h", b"h2"],
                &[b"SELECT", b"5"],
                &[b"SET", b"taken", b"before"],
                &[b"COPY", b"b", b"taken", b"db", b"5"],
                &[b"COPY", b"b", b"replaced", b"DB", b"8", b"REPLACE"],
                &[b"SELECT", b"8"],
                &[b"SET", b"kept", b"before"],
                &[b"SELECT", b"5"],
                &[b"COPY", b"b", b"kept", b"DB", b"8"],
                &[b"SELECT", b"7"],
                &[b"SET", b"x", b"flushed"],
                &[b"FLUSHDB", b"ASYNC"],
                // Database 3 moves to 15 (and 15, empty, to 3); database 9 is never used.
                &[b"SWAPDB", b"3", b"15"],
                // A SELECT queued in a transaction applies at EXEC, in order, and stays.
                &[b"SELECT", b"15"],
                &[b"MULTI"],
                &[b"SET", b"before select", b"15"],
                &[b"SELECT", b"9"],
                &[b"SET", b"m", b"9"],
                &[b"EXEC"],
                &[b"SET", b"after exec", b"9"],
            ],
        );
        // Each file starts in database 0.
        write(dir.path(), "a.2.incr.aof", &[&[b"SET", b"second file", b"0"]]);
        let databases = databases(16);
        let report = load_into(dir.path(), &databases).unwrap();
        assert_eq!(report.commands, 31);
        let hash = |name: &[u8]| databases.get(15).unwrap().get_with_deadline(name).unwrap().0;
        assert_eq!((hash(b"h").encoding(), hash(b"h2").encoding()), ("listpack", "listpack"));
        for name in [&b"h"[..], b"h2"] {
            databases.get(15).unwrap().delete(name);
        }
        assert_eq!(
            strings(&databases),
            owned(&[
                (0, "a", "in 0"),
                (0, "second file", "0"),
                (5, "b", "moved"),
                (5, "taken", "before"),
                (8, "kept", "before"),
                (8, "replaced", "moved"),
                (9, "after exec", "9"),
                (9, "m", "9"),
                (15, "a", "in 3"),
                (15, "before select", "15"),
            ])
        );
        let deadline = |number: usize, key: &[u8]| databases.get(number).unwrap().get_with_deadline(key).unwrap().1;
        assert_eq!((deadline(5, b"b"), deadline(8, b"replaced")), (Some(4_000_000_000_000), Some(4_000_000_000_000)));
        assert_eq!(deadline(8, b"kept"), None);
        assert!(databases.existing(7).is_some_and(Store::is_empty));
    }

    #[test]
    fn flushall_empties_every_database() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.manifest"), "file a.1.incr.aof seq 1 type i\n").unwrap();
        write(
            dir.path(),
            "a.1.incr.aof",
            &[&[b"SET", b"a", b"0"], &[b"SELECT", b"4"], &[b"SET", b"b", b"4"], &[b"FLUSHALL"], &[b"SET", b"c", b"4"]],
        );
        let databases = databases(16);
        load_into(dir.path(), &databases).unwrap();
        assert_eq!(strings(&databases), owned(&[(4, "c", "4")]));
    }

    /// Writes commands given as words ("SET k v").
    fn write_words(dir: &Path, name: &str, commands: &[&str]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for command in commands {
            encode(&mut bytes, &command.split(' ').map(str::as_bytes).collect::<Vec<_>>());
        }
        std::fs::write(dir.join(name), &bytes).unwrap();
        bytes
    }

    #[test]
    fn a_database_out_of_range_stops_the_load_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.manifest"), "file a.1.incr.aof seq 1 type i\n").unwrap();
        let set_len = write_words(dir.path(), "a.1.incr.aof", &["SET k v"]).len() as u64;
        for (commands, db) in [
            (&["SET k v", "SELECT 16"][..], 16),
            (&["SET k v", "MULTI", "SELECT 16", "EXEC"], 16),
            (&["SET k v", "SWAPDB 0 99"], 99),
            (&["SET k v", "MOVE k 16"], 16),
            (&["SET k v", "COPY k k DB 20"], 20),
        ] {
            write_words(dir.path(), "a.1.incr.aof", commands);
            let error = load_into(dir.path(), &databases(16)).unwrap_err();
            let AofLoadError::OtherDatabase { offset, db: found, databases: 16, .. } = &error else {
                panic!("{commands:?}: {error}")
            };
            assert_eq!(*found, db, "{error}");
            // At the failing command, after the SET (and the MULTI).
            assert!(*offset >= set_len, "{error}");
            let text = error.to_string();
            for expected in ["DB index is out of range", &format!("database {db}"), &format!("`databases` {}", db + 1)]
            {
                assert!(text.contains(expected), "{expected}: {text}");
            }
        }
        write_words(dir.path(), "a.1.incr.aof", &["SELECT 16", "SET k v"]);
        let seventeen = databases(17);
        load_into(dir.path(), &seventeen).unwrap();
        assert_eq!(strings(&seventeen), owned(&[(16, "k", "v")]));
        for (bad, expected) in [("SELECT -1", "out of range"), ("SELECT zero", "not an integer")] {
            write_words(dir.path(), "a.1.incr.aof", &[bad]);
            let error = load_into(dir.path(), &databases(16)).unwrap_err();
            assert!(matches!(error, AofLoadError::Corrupt { .. }), "{error}");
            assert!(error.to_string().contains(expected), "{error}");
        }
    }

    /// Strings, hashes and sets with deadlines an hour on, in databases 0, 3 and 15.
    fn filled() -> Databases {
        let databases = databases(16);
        let later = SetOptions { expiry: SetExpiry::At(databases.now_ms() + 3_600_000), ..SetOptions::default() };
        for number in [0, 3, 15] {
            let store = databases.get(number).unwrap();
            store.put(b"name", Value::from(format!("db {number}")), later);
            store.hset(b"hash", &[(b"db", number.to_string().as_bytes())]).unwrap();
            let members: Vec<Vec<u8>> = (0..100).map(|i| format!("m{i}").into_bytes()).collect();
            store.sadd(b"set", &members.iter().map(Vec::as_slice).collect::<Vec<_>>()).unwrap();
        }
        databases
    }

    fn write_filled_base(dir: &Path, source: &Databases, rdb: bool) -> String {
        let name = base_name("a", 1, rdb);
        let header =
            RdbHeader { redis_version: "7.0.0", ctime_secs: 0, used_mem: source.memory_bytes(), aof_base: true };
        let size = write_base(source.snapshot(), dir, &name, rdb.then_some((SaveOptions::default(), header))).unwrap();
        assert_eq!(size, std::fs::metadata(dir.join(&name)).unwrap().len());
        std::fs::write(dir.join("a.manifest"), format!("file {name} seq 1 type b\n")).unwrap();
        name
    }

    #[test]
    fn a_base_holds_every_database_in_either_form() {
        let source = filled();
        for rdb in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let name = write_filled_base(dir.path(), &source, rdb);
            let loaded = databases(16);
            let report = load_into(dir.path(), &loaded).unwrap();
            assert_eq!(report.keys, 9, "rdb {rdb}");
            assert_eq!(contents(&loaded), contents(&source), "rdb {rdb}");
            if rdb {
                continue;
            }
            // As Redis's rewrite: SELECT before each database's keys, and only then.
            let mut reader = CommandReader::new(BufReader::new(File::open(dir.path().join(&name)).unwrap()));
            let mut selects = Vec::new();
            let mut index = 0;
            while let Some(command) = reader.next_command().unwrap() {
                if command[0] == b"SELECT" {
                    selects.push((index, String::from_utf8(command[1].clone()).unwrap()));
                }
                index += 1;
            }
            let numbers: Vec<&str> = selects.iter().map(|(_, number)| number.as_str()).collect();
            assert_eq!(numbers, ["0", "3", "15"]);
            assert_eq!(selects[0].0, 0, "the file starts with its first database's SELECT");
        }
    }

    #[test]
    fn an_empty_base_is_empty_and_loads() {
        for rdb in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let name = write_filled_base(dir.path(), &databases(16), rdb);
            assert_eq!(std::fs::metadata(dir.path().join(&name)).unwrap().len() == 0, !rdb);
            let loaded = databases(16);
            assert_eq!(load_into(dir.path(), &loaded).unwrap().keys, 0);
            assert!(loaded.is_empty());
        }
    }

    #[test]
    fn a_preamble_database_beyond_databases_stops_the_load_unless_skipped() {
        let dir = tempfile::tempdir().unwrap();
        write_filled_base(dir.path(), &filled(), true);
        let error = load_into(dir.path(), &databases(4)).unwrap_err();
        assert!(
            matches!(&error, AofLoadError::Rdb { source: RdbError::OtherDatabase { db: 15, databases: 4, .. }, .. }),
            "{error}"
        );
        let four = databases(4);
        let skip = LoadOptions { skip_other_dbs: true, ..options() };
        let (_, report) = load(dir.path(), "a.manifest", &four, skip, &LoadProgress::default()).unwrap().unwrap();
        assert_eq!(report.keys, 6);
        assert_eq!(four.get(3).unwrap().len(), 3);
    }

    #[test]
    fn a_torn_tail_of_the_last_file_is_cut_and_elsewhere_it_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.manifest"),
            "file a.1.incr.aof seq 1 type i\nfile a.2.incr.aof seq 2 type i\n",
        )
        .unwrap();
        let first = write(dir.path(), "a.1.incr.aof", &[&[b"SET", b"a", b"1"]]);
        let mut second = write(dir.path(), "a.2.incr.aof", &[&[b"SET", b"b", b"2"]]);
        let good = second.len() as u64;
        second.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nc");
        std::fs::write(dir.path().join("a.2.incr.aof"), &second).unwrap();
        let databases = databases(16);
        let report = load_into(dir.path(), &databases).unwrap();
        assert_eq!(report.truncated.as_ref().map(|(_, dropped)| *dropped), Some(second.len() as u64 - good));
        assert_eq!(std::fs::metadata(dir.path().join("a.2.incr.aof")).unwrap().len(), good);
        assert_eq!(databases.len(), 2);

        std::fs::write(dir.path().join("a.1.incr.aof"), &first[..first.len() - 3]).unwrap();
        let error = load_into(dir.path(), &self::databases(16)).unwrap_err();
        assert!(error.to_string().contains("not the last"), "{error}");
        std::fs::write(dir.path().join("a.1.incr.aof"), b"garbage\r\n").unwrap();
        let error = load_into(dir.path(), &self::databases(16)).unwrap_err();
        assert!(error.to_string().contains("bad file format"), "{error}");
        assert_eq!(head(&dir.path().join("a.1.incr.aof"), 100), b"garbage\r\n", "left untouched");
    }

    #[test]
    fn commands_cstore_cannot_run_stop_the_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.manifest"), "file a.1.incr.aof seq 1 type i\n").unwrap();
        write(dir.path(), "a.1.incr.aof", &[&[b"LPUSH", b"l", b"v"]]);
        let error = load_into(dir.path(), &databases(16)).unwrap_err();
        assert!(error.to_string().contains("LPUSH"), "{error}");
        let missing = load(&dir.path().join("none"), "a.manifest", &databases(16), options(), &LoadProgress::default());
        assert!(missing.unwrap().is_none());
    }
}
