//! Startup load of an append-only directory: manifest, then the base (RDB preamble or AOF),
//! then every incremental file, as Redis's `loadAppendOnlyFiles`.
//!
//! Nothing expires while loading, as in Redis (`keyIsExpired` is false while loading): the
//! files are replayed into a scratch store whose clock stands at the epoch, so a command
//! that reads a key (INCR, APPEND, PEXPIREAT from redis-server's files) sees it as the
//! writer did; the result then goes into the server's store, where deadlines passed in the
//! meantime take effect. The scratch store holds the data set once more during the load.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::manifest::{AofFile, Manifest};
use super::resp::{CommandReader, ReadError};
use crate::engine::{
    Clock, ExpireCondition, ManualClock, SetCondition, SetExpiry, SetOptions, SnapshotError, Store, TtlUpdate, Value,
    parse_float, parse_integer,
};
use crate::persistence::progress::LoadProgress;
use crate::persistence::rdb::{self, LoadOptions, RdbError};

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
}

/// What a load found.
#[derive(Debug, Default)]
pub struct AofLoadReport {
    pub files: usize,
    pub commands: u64,
    pub keys: u64,
    /// The file whose torn tail was cut, and how many bytes were dropped.
    pub truncated: Option<(PathBuf, u64)>,
}

/// Loads `dir` (whose manifest is `manifest_name`) into `store`, counting what it reads in
/// `progress`. `None` when there is no
/// manifest. A torn tail of the last incremental file is cut off (with the caller's warning,
/// from the report); anything else wrong stops the load with the files untouched.
pub fn load(
    dir: &Path,
    manifest_name: &str,
    store: &Store,
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
        .build()
        .map_err(|error| AofLoadError::Manifest { path: dir.to_owned(), reason: error.to_string() })?;
    // The collections built here move to `store` as they are: encode them by its thresholds.
    scratch.set_encoding_limits(store.encoding_limits());
    let mut report = AofLoadReport::default();
    let now_ms = store.now_ms();
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
            let options = LoadOptions { now_ms: 0, ..rdb_options };
            rdb::load(input, &options, &scratch.encoding_limits(), |key| {
                let expiry = key.expires_at_ms.map_or(SetExpiry::Clear, SetExpiry::At);
                scratch.put(&key.key, key.value.clone(), SetOptions { expiry, ..SetOptions::default() });
                Ok(())
            })
            .map_err(|source| AofLoadError::Rdb { path: path.clone(), source })?;
        } else {
            report.commands += replay(input, &scratch, now_ms, &path, last, &mut report)?;
        }
        report.files += 1;
    }
    let cut = scratch.snapshot();
    let moved = cut.for_each(|entry| {
        let expiry = entry.expires_at_ms.map_or(SetExpiry::Clear, SetExpiry::At);
        store.put(entry.key, entry.value.clone(), SetOptions { expiry, ..SetOptions::default() });
        Ok::<(), io::Error>(())
    });
    match moved {
        Ok(moved) => report.keys = moved.keys,
        Err(SnapshotError::Flushed | SnapshotError::Emit(_)) => unreachable!("nobody else writes the scratch store"),
    }
    Ok(Some((manifest, report)))
}

/// Replays one AOF file; returns how many commands it applied.
fn replay(
    input: impl BufRead,
    store: &Store,
    now_ms: u64,
    path: &Path,
    last: bool,
    report: &mut AofLoadReport,
) -> Result<u64, AofLoadError> {
    let mut reader = CommandReader::new(input);
    let mut applied = 0;
    // Commands between MULTI and EXEC, applied at EXEC; (its offset, them).
    let mut transaction: Option<(u64, Vec<Vec<Vec<u8>>>)> = None;
    let corrupt = |reason: String| AofLoadError::Corrupt { path: path.to_owned(), reason };
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
                for queued in transaction.take().map(|(_, queued)| queued).unwrap_or_default() {
                    apply(store, now_ms, &queued).map_err(|reason| corrupt(format!("in a transaction: {reason}")))?;
                    applied += 1;
                }
            }
            (b"MULTI" | b"EXEC", _) => return Err(corrupt(format!("unbalanced MULTI/EXEC at byte {start}"))),
            (_, Some((_, queued))) => queued.push(command),
            (_, None) => {
                apply(store, now_ms, &command).map_err(|reason| corrupt(format!("at byte {start}: {reason}")))?;
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

/// Deadlines in the commands' units: seconds or milliseconds, from now or absolute.
fn deadline(now_ms: u64, raw: &[u8], millis: bool, absolute: bool) -> Result<u64, String> {
    let value = parse_integer(raw).ok_or_else(|| format!("{:?} is not an integer", raw.escape_ascii().to_string()))?;
    let ms = if millis { Some(value) } else { value.checked_mul(1000) };
    let base = if absolute { 0 } else { i64::try_from(now_ms).unwrap_or(i64::MAX) };
    let at = ms.and_then(|ms| ms.checked_add(base)).ok_or("an expiry out of range")?;
    Ok(u64::try_from(at).unwrap_or(0))
}

/// Applies one command, with Redis's semantics for the writes it logs; any other command
/// is an error naming it.
fn apply(store: &Store, now_ms: u64, command: &[Vec<u8>]) -> Result<(), String> {
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
    match name.as_slice() {
        b"SELECT" => {
            arity(1)?;
            if args[0] != b"0" {
                return Err(format!("SELECT {}: cstore has only database 0", String::from_utf8_lossy(args[0])));
            }
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
                    _ => return Err(format!("SET with option {:?}", String::from_utf8_lossy(&option))),
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
                return Err("MSET without key value pairs".to_owned());
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
                    _ => return Err("an EXPIRE flag cstore does not know".to_owned()),
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
                        _ => return Err("GETEX with an option cstore does not know".to_owned()),
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
        b"FLUSHALL" | b"FLUSHDB" => {
            store.clear();
        }
        b"HSET" | b"HMSET" => {
            if args.len() < 3 || args.len().is_multiple_of(2) {
                return Err("HSET without field value pairs".to_owned());
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
            return Err(format!("the command {shown}, which cstore does not run (a type or feature it lacks)"));
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
    use super::*;

    fn write(dir: &Path, name: &str, commands: &[&[&[u8]]]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for command in commands {
            encode(&mut bytes, command);
        }
        std::fs::write(dir.join(name), &bytes).unwrap();
        bytes
    }

    fn options() -> LoadOptions {
        LoadOptions { skip_unsupported_types: false, skip_other_dbs: false, verify_checksum: true, now_ms: 0 }
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
        let store = Store::builder().build().unwrap();
        let progress = LoadProgress::default();
        let (_, report) = load(dir.path(), "a.manifest", &store, options(), &progress).unwrap().unwrap();
        // INFO's loading_* fields: every byte of both files counted, read to the end.
        let sizes: u64 = ["a.1.base.aof", "a.1.incr.aof"]
            .iter()
            .map(|name| std::fs::metadata(dir.path().join(name)).unwrap().len())
            .sum();
        assert_eq!((progress.total_bytes(), progress.loaded_bytes()), (sizes, sizes));
        // Both keys are handed over; `n`'s deadline has passed, so the store no longer shows it.
        assert_eq!((report.files, report.commands, report.keys), (2, 6, 2));
        assert_eq!(store.get(b"n"), Ok(None));
        assert_eq!(store.get(b"t").unwrap().as_deref(), Some(&b"xy"[..]));
        assert!(report.truncated.is_none());
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
        let store = Store::builder().build().unwrap();
        let (_, report) = load(dir.path(), "a.manifest", &store, options(), &LoadProgress::default()).unwrap().unwrap();
        assert_eq!(report.truncated.as_ref().map(|(_, dropped)| *dropped), Some(second.len() as u64 - good));
        assert_eq!(std::fs::metadata(dir.path().join("a.2.incr.aof")).unwrap().len(), good);
        assert_eq!(store.len(), 2);

        std::fs::write(dir.path().join("a.1.incr.aof"), &first[..first.len() - 3]).unwrap();
        let error =
            load(dir.path(), "a.manifest", &Store::builder().build().unwrap(), options(), &LoadProgress::default())
                .unwrap_err();
        assert!(error.to_string().contains("not the last"), "{error}");
        std::fs::write(dir.path().join("a.1.incr.aof"), b"garbage\r\n").unwrap();
        let error =
            load(dir.path(), "a.manifest", &Store::builder().build().unwrap(), options(), &LoadProgress::default())
                .unwrap_err();
        assert!(error.to_string().contains("bad file format"), "{error}");
        assert_eq!(head(&dir.path().join("a.1.incr.aof"), 100), b"garbage\r\n", "left untouched");
    }

    #[test]
    fn commands_cstore_cannot_run_stop_the_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.manifest"), "file a.1.incr.aof seq 1 type i\n").unwrap();
        write(dir.path(), "a.1.incr.aof", &[&[b"LPUSH", b"l", b"v"]]);
        let error =
            load(dir.path(), "a.manifest", &Store::builder().build().unwrap(), options(), &LoadProgress::default())
                .unwrap_err();
        assert!(error.to_string().contains("LPUSH"), "{error}");
        let missing = load(
            &dir.path().join("none"),
            "a.manifest",
            &Store::builder().build().unwrap(),
            options(),
            &LoadProgress::default(),
        );
        assert!(missing.unwrap().is_none());
    }
}
