//! The append-only file, in Redis 7's multi-part layout: a directory (`appenddirname`,
//! default `appendonlydir`) holding a manifest (`<appendfilename>.manifest`), one base file
//! (`<appendfilename>.<n>.base.rdb`, an RDB, or `.base.aof` with `aof-use-rdb-preamble no`)
//! and incremental files (`<appendfilename>.<n>.incr.aof`) of RESP commands.
//!
//! ```text
//! manifest.rs the manifest's lines, parsed and written as Redis does
//! resp.rs     commands as RESP, and a reader that tells a torn tail from corruption
//! load.rs     startup: manifest, base, incrementals, into the store
//! mod.rs      file names and the base writer (from a point-in-time cut of every database)
//! ```
//! The server side (logging writes, fsync policies, rewrites) is `server/aof.rs`.
//!
//! Why this layout rather than one file: redis-server 7 and redis-check-aof read it as is,
//! and a rewrite never copies the log: new writes go to a fresh incremental file from the
//! moment of the cut, the new base is written beside it, and one atomic manifest rename
//! switches from the old files to the new (a single file needs the writes made during the
//! rewrite appended to the new file and a rename over the live log).
//!
//! The guarantee: the files listed by the manifest replay to the store's state as of the
//! last write that reached the incremental file; a crash mid-write leaves at most one torn
//! command at the end of the last incremental file, which the load cuts off with a warning
//! (Redis's `aof-load-truncated yes`); anything else wrong stops startup naming the file.
//!
//! How it is tested: unit tests here (manifest, RESP reader cut at every byte, replay with
//! SELECT, SWAPDB, MOVE, COPY ... DB, FLUSHDB, bases of several databases);
//! `redis_server.rs` replays redis-server's AOFs of several databases and has redis-server
//! and redis-check-aof read cstore's; `tests/persistence_aof.rs` drives the real binary with redis-server 7 and redis-check-aof
//! as oracles, `kill -9` during writes with `appendfsync always`, torn tails, and
//! BGREWRITEAOF under load.

pub mod load;
pub mod manifest;
#[cfg(test)]
mod redis_server;
pub mod resp;

use std::io::{self, Write};
use std::path::Path;

use super::file::{self, SaveFileError};
use super::rdb::{RdbHeader, RdbWriter, SaveOptions};
use crate::engine::{PointInTime, SnapshotError};

/// The file names Redis 7 gives the parts of an AOF named `appendfilename`.
pub fn manifest_name(appendfilename: &str) -> String {
    format!("{appendfilename}.manifest")
}

pub fn base_name(appendfilename: &str, seq: u64, rdb: bool) -> String {
    format!("{appendfilename}.{seq}.base.{}", if rdb { "rdb" } else { "aof" })
}

pub fn incr_name(appendfilename: &str, seq: u64) -> String {
    format!("{appendfilename}.{seq}.incr.aof")
}

/// What every incremental AOF file starts with: the replay of each file starts in database 0
/// (as Redis's, which loads each file with a fresh client), and this says so to any reader.
pub fn select_db0() -> Vec<u8> {
    let mut out = Vec::new();
    resp::encode(&mut out, &[b"SELECT", b"0"]);
    out
}

/// Writes the keys of `cut` (every database's, [`Databases::snapshot`]) as a base file
/// `dir/name`, crash-safely; returns its size. As Redis's rewrite: an RDB with a section per
/// database that has keys, or commands with `SELECT n` before each such database's keys. A
/// FLUSHDB or FLUSHALL during the walk ends the walk of the databases it flushed early: what
/// was written is kept, since the flush itself is logged after the cut and clears them at
/// replay.
///
/// [`Databases::snapshot`]: crate::engine::Databases::snapshot
pub fn write_base(
    cut: Vec<(usize, PointInTime<'_>)>,
    dir: &Path,
    name: &str,
    rdb: Option<(SaveOptions, RdbHeader<'_>)>,
) -> Result<u64, SaveFileError> {
    file::replace_atomically(dir, name, |out| {
        let mut size = 0u64;
        let mut out = CountingWriter { out: &mut *out, written: &mut size };
        match rdb {
            Some((options, header)) => {
                let mut writer = RdbWriter::new(&mut out, options, &header)?;
                writer.databases(cut)?;
                writer.finish()?;
            }
            None => write_commands(&mut out, cut)?,
        }
        Ok(size)
    })
}

/// The RESP base: for each database, `SELECT n` before its first key, then the commands
/// that recreate its keys; a database without keys writes nothing.
fn write_commands(out: &mut impl Write, cut: Vec<(usize, PointInTime<'_>)>) -> io::Result<()> {
    for (number, database) in cut {
        let mut selected = false;
        let walked = database.for_each(|entry| {
            if !selected {
                let mut select = Vec::new();
                resp::encode(&mut select, &[b"SELECT", itoa::Buffer::new().format(number).as_bytes()]);
                out.write_all(&select)?;
                selected = true;
            }
            resp::encode_value(&mut *out, entry.key, entry.value, entry.expires_at_ms)
        });
        match walked {
            Ok(_) | Err(SnapshotError::Flushed) => {}
            Err(SnapshotError::Emit(error)) => return Err(error),
        }
    }
    Ok(())
}

/// Counts what goes through it: the base's size without a `stat` afterwards.
struct CountingWriter<'a, W> {
    out: W,
    written: &'a mut u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.out.write(bytes)?;
        *self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
