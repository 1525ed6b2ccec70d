//! The append-only file in the running server: every write that changed the store is logged,
//! `appendfsync` decides when replies wait for the disk, BGREWRITEAOF compacts the log
//! without stopping writers, and `appendonly` turns on and off live.
//!
//! # What is logged
//! After a write to a key, the key's whole resulting state: `SET key value [PXAT deadline]`,
//! or `DEL key` when it is gone; FLUSHALL, FLUSHDB and SWAPDB as themselves. A record names
//! its database with `SELECT` only when the database changes, as Redis's log does. Redis logs the
//! command instead (rewriting relative expiries to absolute ones); a state depends on no
//! clock and no previous value, so replay is deterministic whatever expired in between, and
//! a key evicted or expired by the time of the record is logged as deleted. The cost: APPEND
//! and SETRANGE log the whole value. Keys the store removes by itself (eviction, active and
//! lazy expiry) reach the log through the store's removal hook as their state (a DEL), as
//! Redis propagates them: eviction's before the reply of the command that evicted, expiry's
//! after each active-expiry pass and at cron's pace.
//!
//! # Order and the rewrite's cut
//! Writes of one key are logged in the order they happened: a write holds its key's stripe
//! (a fixed hash of the key over [`STRIPES`] mutexes, independent of the engine's shards)
//! from before it runs until its record is in the log buffer. Writes to different keys
//! commute (each record is a key's whole state), so their order in the log does not matter.
//! A rewrite holds every stripe around `Databases::try_snapshot` and the switch to the new
//! incremental file: every write that the cut contains was appended before the switch (old
//! files), every write after the cut after it (new file). `try_snapshot` rather than
//! `snapshot`: a BGSAVE or migration in progress must not keep writers waiting on the
//! stripes; the rewrite lets go and retries. It also gives up when a transaction runs: a
//! command takes its stripe inside the store's pass (or an EXEC's exclusivity), so nobody
//! may wait for a pass while holding a stripe.
//!
//! # Transactions
//! An EXEC's records are wrapped in MULTI and EXEC (Redis's own format, which the loader
//! replays whole or, when the log ends inside one, not at all). The EXEC holds the store
//! exclusively, so no other command's record can fall between them.
//!
//! # When a reply goes out
//! A write's record gets a position in the log; the connection sends its replies only once
//! the log is written (`everysec`, `no`) or written and fsynced (`always`) up to the
//! position of its last write. Whoever writes takes everything buffered at once, so the
//! clients of one batch share one write and one fsync (group commit). Under `everysec` and
//! `no` the waiting connection writes the buffer itself, as Redis's event loop does before
//! sending its replies: a hand-off to another thread per batch cost a wake-up and two
//! context switches, about a sixth of SET throughput on 2 cores. The writer thread fsyncs
//! (each second, or for every batch under `always`, where it also does the writing so that
//! no connection task blocks on the disk) and writes what nobody waits for (expiries
//! logged at cron's pace).
//!
//! # How it is tested
//! `tests/persistence_aof.rs`: `kill -9` during writes with `appendfsync always` and with
//! `everysec` (every acknowledged write is there after restart), BGREWRITEAOF under writes (nothing lost,
//! redis-check-aof accepts the result), redis-server 7 loading cstore's directory and the
//! other way round, and CONFIG SET appendonly.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex, MutexGuard};

use super::command::CommandError;
use super::command::server::{InfoSection, redis_version};
use super::config::RuntimeSettings;
use super::metrics::Metrics;
use crate::engine::{Databases, Store, Value};
use crate::persistence::aof::manifest::{AofFile, FileKind, Manifest};
use crate::persistence::aof::{self, resp};
use crate::persistence::config::{AppendFsync, PersistenceConfig};
use crate::persistence::file;
use crate::persistence::rdb::RdbHeader;

/// Stripes that order the writes of one key with its log record. A power of two.
pub(crate) const STRIPES: usize = 1024;

/// How long the writer sleeps with nothing to write: the everysec fsync's pace.
const FSYNC_EVERY: Duration = Duration::from_secs(1);
/// After a failed write to the log, the next try waits this long (Redis retries each second).
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// An incremental file being appended to.
struct IncrFile {
    file: File,
    /// Bytes in the file, known without a syscall: where to cut a failed write's partial
    /// prefix back to (Redis's ftruncate after a short write), so a retry logs nothing twice.
    /// Changed only under [`Aof::writing`].
    len: AtomicU64,
}

impl IncrFile {
    fn open(path: &Path) -> io::Result<Arc<Self>> {
        let file = OpenOptions::new().append(true).open(path)?;
        let len = AtomicU64::new(file.metadata()?.len());
        Ok(Arc::new(IncrFile { file, len }))
    }
}

/// Records not yet handed to the writer thread, by the file they go to.
#[derive(Default)]
struct Log {
    /// Where new records go; `None` while the AOF is off.
    current: Option<Arc<IncrFile>>,
    pending: Vec<(Arc<IncrFile>, Vec<u8>)>,
    /// Bytes ever appended: the position of the last record's end.
    appended: u64,
    stop: bool,
    /// During an EXEC: whether its MULTI is in the log yet (written before its first record).
    transaction: Option<bool>,
    /// The database the records in `current` apply to now, if known.
    db: Option<usize>,
}

impl Log {
    /// New records go to `file` (`None`: nowhere), where database `db` is selected.
    fn switch_to(&mut self, file: Option<Arc<IncrFile>>, db: Option<usize>) {
        self.current = file;
        self.db = db;
    }
}

/// The file side of the log, locked while a batch is written so that batches reach the
/// files in the order they were taken from the buffer.
#[derive(Default)]
struct Writing {
    /// Files written to since their last fsync.
    unsynced: Vec<Arc<IncrFile>>,
}

/// What the manifest says now, and the rewrite's bookkeeping.
struct Files {
    manifest: Manifest,
    /// The AOF's size after the last rewrite (or load): what auto-rewrite measures growth by.
    rewrite_base_size: u64,
    base_size: u64,
}

#[derive(Default)]
struct Status {
    rewrite_started: Option<Instant>,
    rewrite_scheduled: bool,
    last_rewrite_secs: Option<u64>,
    last_rewrite_ok: bool,
    rewrites: u64,
    last_write_error: Option<String>,
}

pub(crate) struct Aof {
    databases: Arc<Databases>,
    settings: Arc<RuntimeSettings>,
    metrics: Arc<Metrics>,
    stripes: Box<[CachePadded<Mutex<()>>]>,
    /// Whether writes are logged; changed only with every stripe held.
    logging: AtomicBool,
    log: Mutex<Log>,
    writing: Mutex<Writing>,
    wake_writer: Condvar,
    /// The log position written (and fsynced under `always`): replies up to it may go out.
    /// An atomic rather than a channel: every reply reads it, and a channel's lock would
    /// bounce between the cores on each read.
    acked: AtomicU64,
    /// Woken when `acked` moves, for replies that wait for the writer thread.
    acked_moved: tokio::sync::Notify,
    /// Held by whoever changes the files (rewrite, on, off): one at a time.
    files: Mutex<Files>,
    status: Mutex<Status>,
    write_failed: AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Keys the store removed by itself (evicted, expired) whose state is still to be logged,
    /// with the slot of their database's store (its number may change before they are).
    removed: Mutex<Vec<(usize, Vec<u8>)>>,
}

/// FNV-1a: a fixed hash, so a key keeps its stripe whatever the engine's shard count.
fn stripe_of(key: &[u8]) -> usize {
    let hash = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    (hash as usize) & (STRIPES - 1)
}

impl Aof {
    pub(crate) fn new(
        databases: Arc<Databases>,
        settings: Arc<RuntimeSettings>,
        metrics: Arc<Metrics>,
    ) -> io::Result<Arc<Self>> {
        let aof = Arc::new(Aof {
            databases,
            settings,
            metrics,
            stripes: (0..STRIPES).map(|_| CachePadded::new(Mutex::new(()))).collect(),
            logging: AtomicBool::new(false),
            log: Mutex::new(Log::default()),
            writing: Mutex::new(Writing::default()),
            wake_writer: Condvar::new(),
            acked: AtomicU64::new(0),
            acked_moved: tokio::sync::Notify::new(),
            files: Mutex::new(Files { manifest: Manifest::default(), rewrite_base_size: 0, base_size: 0 }),
            status: Mutex::new(Status { last_rewrite_ok: true, ..Status::default() }),
            write_failed: AtomicBool::new(false),
            writer: Mutex::new(None),
            removed: Mutex::new(Vec::new()),
        });
        // Evicted and expired keys reach the log as DEL, as Redis propagates them: else an
        // evicted key would come back at the next start. Noted here, logged by
        // `log_removals` (the hook may run under a stripe, which logging takes).
        let noted = Arc::downgrade(&aof);
        let hook = Box::new(move |slot: usize, key: &[u8]| {
            if let Some(aof) = noted.upgrade() {
                aof.note_removal(slot, key);
            }
        });
        if aof.databases.set_removal_hook(hook).is_err() {
            return Err(io::Error::other("the store already reports its removals elsewhere"));
        }
        let writer = Arc::clone(&aof);
        let handle = std::thread::Builder::new().name("aof-writer".into()).spawn(move || writer.write_loop())?;
        *aof.writer.lock() = Some(handle);
        Ok(aof)
    }

    /// Runs `op` (a write to `key` of database `store` returning its result and what it did
    /// to the key) and logs the key's resulting state. `wait` becomes the log position the
    /// reply waits for. The caller holds a pass or exclusivity, so the database's number
    /// cannot change (SWAPDB) before the record is in the log.
    pub(crate) fn write<'v, R>(
        &self,
        wait: &mut u64,
        store: &Store,
        key: &[u8],
        op: impl FnOnce() -> (R, Logged<'v>),
    ) -> R {
        let _ordered = self.stripes[stripe_of(key)].lock();
        let (result, logged) = op();
        if self.logging.load(Relaxed) {
            let db = Some(store.number());
            let record = match logged {
                Logged::Unchanged => return result,
                Logged::Changed => self.state_record(store, key),
                Logged::Stored { value, deadline } => Record::single(db, string_record(key, value, deadline)),
                Logged::Command(args) => {
                    let mut record = Vec::new();
                    resp::encode(&mut record, args);
                    Record::single(db, record)
                }
                Logged::Encoded(record) => Record::single(db, record),
            };
            *wait = (*wait).max(self.append(record));
        }
        result
    }

    /// The record of `key`'s state now in `store`; the caller holds its stripe.
    fn state_record(&self, store: &Store, key: &[u8]) -> Record {
        let state = store.get_with_deadline(key);
        let commands = record_of(key, state.as_ref().map(|(value, deadline)| (value, *deadline)));
        // A collection's state takes several commands, which a replay must apply whole.
        let whole = matches!(state, Some((Value::Hash(_) | Value::Set(_), _)));
        Record { db: Some(store.number()), commands, whole }
    }

    fn note_removal(&self, slot: usize, key: &[u8]) {
        if self.logging.load(Relaxed) {
            self.removed.lock().push((slot, key.to_vec()));
        }
    }

    /// Logs the state of every key the store removed by itself since the last call (a DEL,
    /// unless a write has set it again since, whose state is logged then: any record of a
    /// key's state taken under its stripe is a correct last word). Returns the log position
    /// to wait for before a reply may depend on these removals (0: nothing logged). The
    /// caller holds no stripe, and holds a pass of the store or its exclusivity (a command does):
    /// a stripe is only ever taken inside one, never the other way round (see the module page).
    pub(crate) fn log_removals_in_command(&self) -> u64 {
        let removed = std::mem::take(&mut *self.removed.lock());
        let mut position = 0;
        for (slot, key) in removed {
            let _ordered = self.stripes[stripe_of(&key)].lock();
            if self.logging.load(Relaxed)
                && let Some(store) = self.databases.in_slot(slot)
            {
                position = self.append(self.state_record(store, &key));
            }
        }
        position
    }

    /// [`Aof::log_removals_in_command`] for a caller outside any command (cron, the sweeper).
    pub(crate) fn log_removals(&self) -> u64 {
        let _pass = self.databases.pass();
        self.log_removals_in_command()
    }

    /// FLUSHALL (`db` is `None`) or FLUSHDB of database `db`: runs `op` with every key's
    /// writes held back, and logs it.
    pub(crate) fn flush(&self, wait: &mut u64, db: Option<usize>, op: impl FnOnce() -> usize) -> usize {
        let command: &[u8] = if db.is_some() { b"FLUSHDB" } else { b"FLUSHALL" };
        self.log_whole(wait, db, &[command], op)
    }

    /// SWAPDB `a` `b`: runs `swap` (the caller holds every database exclusively) and logs it
    /// if it succeeds. Every stripe is held meanwhile, as for a flush, so that a rewrite's cut
    /// and switch of files fall before both the swap and its record or after both.
    pub(crate) fn swap<E>(
        &self,
        wait: &mut u64,
        a: usize,
        b: usize,
        swap: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), E> {
        let (a, b) = (a.to_string(), b.to_string());
        self.log_whole(wait, None, &[b"SWAPDB", a.as_bytes(), b.as_bytes()], swap)
    }

    /// Runs `op` with every key's writes held back and logs `command` (for database `db`)
    /// unless `op` failed.
    fn log_whole<R: Succeeded>(
        &self,
        wait: &mut u64,
        db: Option<usize>,
        command: &[&[u8]],
        op: impl FnOnce() -> R,
    ) -> R {
        let _all = self.hold_all();
        let result = op();
        if self.logging.load(Relaxed) && result.succeeded() {
            let mut record = Vec::new();
            resp::encode(&mut record, command);
            *wait = (*wait).max(self.append(Record::single(db, record)));
        }
        result
    }

    fn hold_all(&self) -> Vec<MutexGuard<'_, ()>> {
        self.stripes.iter().map(|stripe| stripe.lock()).collect()
    }

    /// Runs `body` (an EXEC's commands, or a command that writes several keys as one) with the
    /// store held exclusively (so that no other write appends meanwhile), and wraps the records it appends in MULTI and EXEC, as Redis
    /// logs a transaction: a load replays all of it or, if the log ends inside it, none.
    /// Returns `body`'s result and the log position a reply must wait for (0: nothing logged).
    pub(crate) fn transaction<R>(&self, body: impl FnOnce() -> R) -> (R, u64) {
        // Inside an EXEC already (a MOVE or RENAME queued in it): the EXEC's MULTI and EXEC
        // wrap these records too.
        if self.log.lock().transaction.is_some() {
            return (body(), 0);
        }
        self.log.lock().transaction = Some(false);
        let result = body();
        let opened = self.log.lock().transaction.take() == Some(true);
        let mut position = 0;
        if opened {
            let mut exec = Vec::new();
            resp::encode(&mut exec, &[b"EXEC"]);
            position = self.append(Record::single(None, exec));
        }
        (result, position)
    }

    fn append(&self, record: Record) -> u64 {
        let mut log = self.log.lock();
        let Some(current) = log.current.clone() else { return 0 };
        let Record { db, commands: mut record, whole } = record;
        // The log says which database a record is for only when it changes, as Redis's does.
        if let Some(db) = db
            && log.db != Some(db)
        {
            let mut select = Vec::with_capacity(record.len() + 24);
            resp::encode(&mut select, &[b"SELECT", db.to_string().as_bytes()]);
            select.append(&mut record);
            record = select;
            log.db = Some(db);
        }
        let opens = match log.transaction {
            Some(false) => {
                log.transaction = Some(true);
                true
            }
            Some(true) => false,
            None => whole,
        };
        if opens {
            let mut multi = Vec::with_capacity(record.len() + 16);
            resp::encode(&mut multi, &[b"MULTI"]);
            multi.append(&mut record);
            record = multi;
        }
        if whole && log.transaction.is_none() {
            resp::encode(&mut record, &[b"EXEC"]);
        }
        log.appended += record.len() as u64;
        match log.pending.last_mut() {
            Some((file, bytes)) if Arc::ptr_eq(file, &current) => bytes.extend_from_slice(&record),
            _ => log.pending.push((current, record)),
        }
        let position = log.appended;
        drop(log);
        // Under `everysec` and `no` the connection that waits writes the buffer itself.
        if self.settings.appendfsync() == AppendFsync::Always {
            self.wake_writer.notify_one();
        }
        position
    }

    /// Waits until the log is written (and fsynced under `always`) up to `position`, writing
    /// the buffer itself when that is all it takes.
    pub(crate) async fn wait_acked(&self, position: u64) {
        if self.acked.load(Acquire) >= position {
            return;
        }
        if self.settings.appendfsync() != AppendFsync::Always {
            // Let the other connections that are ready run first, so that one write carries
            // their records too, as Redis writes once per event-loop turn: a write per reply
            // cost more than the reply itself.
            tokio::task::yield_now().await;
            if self.acked.load(Acquire) >= position || self.write_inline(position) {
                return;
            }
        }
        loop {
            let moved = self.acked_moved.notified();
            tokio::pin!(moved);
            // Registered before reading, so a publication in between is not missed.
            moved.as_mut().enable();
            if self.acked.load(Acquire) >= position {
                return;
            }
            moved.await;
        }
    }

    /// Under `everysec` and `no`: makes sure the log is written up to `position`, writing
    /// everything buffered on the calling thread if no one has yet. Blocks only while
    /// another thread writes a batch, never for an fsync. Returns false when the writer
    /// thread is the one to publish it: under `always`, or after a failed write (it retries).
    fn write_inline(&self, position: u64) -> bool {
        if self.settings.appendfsync() == AppendFsync::Always {
            return false;
        }
        let mut writing = self.writing.lock();
        if self.acked.load(Acquire) >= position {
            return true;
        }
        let Ok(end) = self.write_buffered(&mut writing) else { return false };
        // Read after the batch was taken: a record appended after a switch to `always` is
        // in the batch only if this read sees `always`; then the writer thread fsyncs and
        // publishes it instead.
        if self.settings.appendfsync() == AppendFsync::Always {
            self.wake_writer.notify_one();
            return false;
        }
        self.publish(end);
        true
    }

    /// Writes every buffered record; the caller holds `writing`. Returns the log position
    /// written up to, or, after a failed write (its partial prefix cut off, the records
    /// back in front of the buffer, the failure recorded), an error.
    fn write_buffered(&self, writing: &mut Writing) -> Result<u64, ()> {
        let (batch, end) = {
            let mut log = self.log.lock();
            (std::mem::take(&mut log.pending), log.appended)
        };
        let mut batch = batch.into_iter();
        for (file, bytes) in batch.by_ref() {
            if let Err(error) = (&file.file).write_all(&bytes) {
                let _ = file.file.set_len(file.len.load(Relaxed));
                let mut log = self.log.lock();
                let rest: Vec<_> = std::iter::once((file, bytes)).chain(batch).collect();
                log.pending.splice(0..0, rest);
                drop(log);
                self.write_failed(format!("{error}"));
                return Err(());
            }
            file.len.fetch_add(bytes.len() as u64, Relaxed);
            if !writing.unsynced.iter().any(|seen| Arc::ptr_eq(seen, &file)) {
                writing.unsynced.push(file);
            }
        }
        Ok(end)
    }

    /// Lets replies go out up to `end`: every byte before it is in the files.
    fn publish(&self, end: u64) {
        if self.acked.fetch_max(end, Release) < end {
            self.acked_moved.notify_waiters();
        }
    }

    /// The writer thread: fsyncs by the policy, writes what is buffered when no connection
    /// does (under `always`, everything), publishes how far replies may go.
    fn write_loop(&self) {
        let mut last_fsync = Instant::now();
        loop {
            let policy = self.settings.appendfsync();
            let stop = {
                let mut log = self.log.lock();
                let idle = policy != AppendFsync::Always || self.acked.load(Acquire) >= log.appended;
                if idle && !log.stop {
                    self.wake_writer.wait_for(&mut log, FSYNC_EVERY);
                }
                log.stop
            };
            let (end, to_sync) = {
                let mut writing = self.writing.lock();
                let Ok(end) = self.write_buffered(&mut writing) else {
                    drop(writing);
                    std::thread::sleep(RETRY_DELAY);
                    continue;
                };
                let policy = self.settings.appendfsync();
                let fsync_now = stop
                    || policy == AppendFsync::Always
                    || (policy == AppendFsync::Everysec && last_fsync.elapsed() >= FSYNC_EVERY);
                (end, if fsync_now { std::mem::take(&mut writing.unsynced) } else { Vec::new() })
            };
            if !to_sync.is_empty() {
                // Outside `writing`: connections keep writing while the disk syncs.
                let fsync_started = Instant::now();
                let synced = to_sync.iter().find_map(|file| file.file.sync_data().err());
                self.metrics.aof_fsynced(fsync_started.elapsed());
                if let Some(error) = synced {
                    let mut writing = self.writing.lock();
                    for file in to_sync {
                        if !writing.unsynced.iter().any(|seen| Arc::ptr_eq(seen, &file)) {
                            writing.unsynced.push(file);
                        }
                    }
                    drop(writing);
                    self.write_failed(format!("fsync: {error}"));
                    std::thread::sleep(RETRY_DELAY);
                    continue;
                }
                last_fsync = Instant::now();
            }
            if self.write_failed.swap(false, Relaxed) {
                tracing::warn!("AOF write error looks solved, the server can write again");
                self.status.lock().last_write_error = None;
            }
            self.publish(end);
            if stop && self.log.lock().pending.is_empty() {
                return;
            }
        }
    }

    fn write_failed(&self, error: String) {
        self.metrics.aof_write_failed();
        if !self.write_failed.swap(true, Relaxed) {
            tracing::error!(%error, "error writing the AOF: writes are refused until it succeeds");
        }
        self.status.lock().last_write_error = Some(error);
    }

    /// Refuses writes while the log cannot be written, as Redis does.
    pub(crate) fn check_writes_allowed(&self) -> Result<(), CommandError> {
        if !self.write_failed.load(Relaxed) {
            return Ok(());
        }
        let reason = self.status.lock().last_write_error.clone().unwrap_or_default();
        Err(CommandError::Other(format!("MISCONF Errors writing to the AOF file: {reason}")))
    }

    /// After the startup load: with `appendonly yes`, continue the loaded AOF (its last
    /// incremental file, or a new one), or create one from the loaded data when none was.
    pub(crate) fn start(self: &Arc<Self>, loaded: Option<Manifest>) -> anyhow::Result<()> {
        let config = self.settings.persistence();
        if !config.appendonly {
            return Ok(());
        }
        let Some(manifest) = loaded else {
            return self.rewrite(Mode::Enable).map_err(|error| anyhow::anyhow!("cannot create the AOF: {error}"));
        };
        let dir = config.aof_dir();
        let mut files = self.files.lock();
        let size = manifest_size(&dir, &manifest);
        files.base_size = manifest.base.as_ref().map_or(0, |base| file_len(&dir.join(&base.name)));
        files.rewrite_base_size = size;
        files.manifest = manifest;
        let incr = match files.manifest.incrs.last() {
            Some(last) => IncrFile::open(&dir.join(&last.name))?,
            None => {
                let (incr, entry) = new_incr(&dir, &config, files.manifest.next_incr_seq())?;
                let mut next = files.manifest.clone();
                next.incrs.push(entry);
                write_manifest(&dir, &config, &next)?;
                files.manifest = next;
                incr
            }
        };
        let _all = self.hold_all();
        // The database the continued file's last record selected is not known: the next
        // record says its own.
        self.log.lock().switch_to(Some(incr), None);
        self.logging.store(true, Relaxed);
        tracing::info!(dir = %dir.display(), "appending to the AOF");
        Ok(())
    }

    /// CONFIG SET may have changed `appendonly`: turn the AOF on (a rewrite writes the base
    /// first) or off, in the background as Redis does.
    pub(crate) fn settings_changed(self: &Arc<Self>) {
        let wanted = self.settings.appendonly();
        if wanted == self.logging.load(Relaxed) {
            return;
        }
        let aof = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("aof-switch".into()).spawn(move || {
            if !wanted {
                aof.turn_off();
            } else if let Err(error) = aof.rewrite(Mode::Enable) {
                tracing::error!(%error, on = wanted, "cannot switch the AOF");
            }
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the thread that switches the AOF");
        }
    }

    fn turn_off(&self) {
        let _files = self.files.lock();
        if !self.logging.load(Relaxed) {
            return;
        }
        let end = {
            let _all = self.hold_all();
            self.logging.store(false, Relaxed);
            let mut log = self.log.lock();
            log.switch_to(None, None);
            log.appended
        };
        self.wait_written(end);
        tracing::info!("AOF turned off");
    }

    /// Blocks until the writer has caught up with `end` (or stopped): a rare caller
    /// (turning the AOF off) on its own thread, so polling is simplest.
    fn wait_written(&self, end: u64) {
        while self.acked.load(Acquire) < end && self.writer.lock().as_ref().is_some_and(|w| !w.is_finished()) {
            if !self.write_inline(end) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// BGREWRITEAOF: `Ok(false)` when a rewrite is already under way.
    pub(crate) fn background_rewrite(self: &Arc<Self>) -> Result<bool, String> {
        {
            let mut status = self.status.lock();
            if status.rewrite_started.is_some() {
                return Ok(false);
            }
            status.rewrite_started = Some(Instant::now());
        }
        let aof = Arc::clone(self);
        let mode = if self.logging.load(Relaxed) { Mode::Rewrite } else { Mode::Standalone };
        std::thread::Builder::new()
            .name("aof-rewrite".into())
            .spawn(move || {
                if let Err(error) = aof.rewrite(mode) {
                    tracing::error!(%error, "background AOF rewrite failed");
                }
            })
            .map_err(|error| {
                self.status.lock().rewrite_started = None;
                format!("ERR cannot start the rewrite: {error}")
            })?;
        Ok(true)
    }

    /// Writes a new base from a point-in-time cut and switches the manifest to it, with new
    /// writes going to a new incremental file from the cut on (`Mode::Standalone`, AOF off:
    /// a base alone).
    fn rewrite(&self, mode: Mode) -> Result<(), String> {
        let span = tracing::info_span!("aof rewrite", mode = ?mode);
        let _entered = span.enter();
        self.status.lock().rewrite_started.get_or_insert_with(Instant::now);
        let started = Instant::now();
        let result = self.rewrite_files(mode);
        if result.is_err() && mode == Mode::Enable {
            // The new incremental file is listed nowhere without its base: stop logging to it.
            let _all = self.hold_all();
            self.logging.store(false, Relaxed);
            self.log.lock().switch_to(None, None);
        }
        let mut status = self.status.lock();
        status.rewrite_started = None;
        status.last_rewrite_secs = Some(started.elapsed().as_secs());
        status.last_rewrite_ok = result.is_ok();
        match &result {
            Ok(size) => {
                status.rewrites += 1;
                self.metrics.aof_rewrite_finished(Some(started.elapsed()));
                tracing::info!(base_bytes = size, seconds = started.elapsed().as_secs_f64(), "AOF rewrite done");
            }
            Err(error) => {
                self.metrics.aof_rewrite_finished(None);
                tracing::error!(%error, "AOF rewrite failed; the previous files stay in use");
            }
        }
        result.map(|_| ())
    }

    fn rewrite_files(&self, mode: Mode) -> Result<u64, String> {
        let mut files = self.files.lock();
        if mode == Mode::Enable && self.logging.load(Relaxed) {
            return Ok(files.base_size);
        }
        let config = self.settings.persistence();
        let dir = config.aof_dir();
        std::fs::create_dir_all(&dir).map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
        let previous = files.manifest.clone();
        let next_incr_seq = previous.next_incr_seq().max(1);
        // The new incremental file is listed before any write reaches it, so that whatever it
        // receives is replayed even if this rewrite fails (Redis does the same).
        let incr = match mode {
            Mode::Standalone => None,
            Mode::Rewrite | Mode::Enable => {
                let (incr, entry) = new_incr(&dir, &config, next_incr_seq).map_err(|error| error.to_string())?;
                if mode == Mode::Rewrite {
                    let mut listed = previous.clone();
                    listed.incrs.push(entry.clone());
                    write_manifest(&dir, &config, &listed).map_err(|error| error.to_string())?;
                    files.manifest = listed;
                }
                Some((incr, entry))
            }
        };
        let cut = loop {
            let all = self.hold_all();
            if let Some(cut) = self.databases.try_snapshot() {
                if let Some((incr, _)) = &incr {
                    // A new incremental file starts with SELECT 0 (`new_incr`).
                    self.log.lock().switch_to(Some(Arc::clone(incr)), Some(0));
                    self.logging.store(true, Relaxed);
                }
                drop(all);
                break cut;
            }
            drop(all);
            // A BGSAVE or a migration walks the store: wait for it without holding writers.
            std::thread::sleep(Duration::from_millis(10));
        };
        let rdb = config.aof_use_rdb_preamble;
        let base = AofFile {
            name: aof::base_name(&config.appendfilename, previous.next_base_seq(), rdb),
            seq: previous.next_base_seq(),
            kind: FileKind::Base,
        };
        let header = RdbHeader {
            redis_version: redis_version(),
            ctime_secs: cut.first().map_or(0, |(_, db)| db.cut_ms()) / 1000,
            used_mem: self.databases.memory_bytes(),
            aof_base: true,
        };
        let base_size = aof::write_base(cut, &dir, &base.name, rdb.then(|| (config.save_options(), header)))
            .map_err(|error| error.to_string())?;
        let next = Manifest {
            base: Some(base),
            history: Vec::new(),
            incrs: incr.iter().map(|(_, entry)| entry.clone()).collect(),
        };
        write_manifest(&dir, &config, &next).map_err(|error| error.to_string())?;
        // The old files are history now: nothing the new manifest lists depends on them.
        for old in previous.base.iter().chain(&previous.history).chain(&previous.incrs) {
            if !next.incrs.iter().any(|kept| kept.name == old.name) {
                let _ = std::fs::remove_file(dir.join(&old.name));
            }
        }
        files.base_size = base_size;
        files.rewrite_base_size = manifest_size(&dir, &next);
        files.manifest = next;
        Ok(base_size)
    }

    /// The auto-rewrite rule (`auto-aof-rewrite-percentage`, `-min-size`), at cron's pace.
    pub(crate) fn cron(self: &Arc<Self>) {
        // Keys that reads found expired: at cron's pace, as nothing waits for them.
        self.log_removals();
        if !self.logging.load(Relaxed) || self.status.lock().rewrite_started.is_some() {
            return;
        }
        let config = self.settings.persistence();
        if config.auto_aof_rewrite_percentage == 0 {
            return;
        }
        let (current, base) = {
            let Some(files) = self.files.try_lock() else { return };
            (manifest_size(&config.aof_dir(), &files.manifest), files.rewrite_base_size.max(1))
        };
        let growth = (current.saturating_mul(100) / base).saturating_sub(100);
        if current >= config.auto_aof_rewrite_min_size && growth >= config.auto_aof_rewrite_percentage {
            tracing::info!(growth_percent = growth, bytes = current, "starting an automatic AOF rewrite");
            let _ = self.background_rewrite();
        }
    }

    /// At shutdown, after the connections are drained: everything logged is written and
    /// fsynced before this returns.
    pub(crate) fn shutdown(&self) {
        self.log.lock().stop = true;
        self.wake_writer.notify_one();
        if let Some(writer) = self.writer.lock().take() {
            let _ = writer.join();
        }
    }

    /// INFO persistence's AOF fields, with Redis's names.
    pub(crate) fn info(&self, section: InfoSection) -> InfoSection {
        let status = self.status.lock();
        let enabled = self.logging.load(Relaxed);
        let seconds = |value: Option<u64>| value.map_or(-1, |secs| i64::try_from(secs).unwrap_or(i64::MAX));
        let mut section = section
            .field("aof_enabled", u8::from(enabled))
            .field("aof_rewrite_in_progress", u8::from(status.rewrite_started.is_some()))
            .field("aof_rewrite_scheduled", u8::from(status.rewrite_scheduled))
            .field("aof_last_rewrite_time_sec", seconds(status.last_rewrite_secs))
            .field("aof_current_rewrite_time_sec", seconds(status.rewrite_started.map(|s| s.elapsed().as_secs())))
            .field("aof_last_bgrewrite_status", if status.last_rewrite_ok { "ok" } else { "err" })
            .field("aof_rewrites", status.rewrites)
            .field("aof_last_write_status", if self.write_failed.load(Relaxed) { "err" } else { "ok" })
            .field("aof_last_cow_size", 0);
        drop(status);
        if enabled {
            let dir = self.settings.persistence().aof_dir();
            let (current, base) = match self.files.try_lock() {
                Some(files) => (manifest_size(&dir, &files.manifest), files.base_size),
                None => (0, 0),
            };
            let log = self.log.lock();
            let buffered: usize = log.pending.iter().map(|(_, bytes)| bytes.len()).sum();
            section = section
                .field("aof_current_size", current)
                .field("aof_base_size", base)
                .field("aof_pending_rewrite", 0)
                .field("aof_buffer_length", buffered)
                .field("aof_pending_bio_fsync", 0)
                .field("aof_delayed_fsync", 0);
        }
        section
    }
}

/// Whether what a logged operation returned means it happened (and is to be logged).
trait Succeeded {
    fn succeeded(&self) -> bool;
}

impl Succeeded for usize {
    fn succeeded(&self) -> bool {
        true
    }
}

impl<E> Succeeded for Result<(), E> {
    fn succeeded(&self) -> bool {
        self.is_ok()
    }
}

/// What a write did to its key, for the log.
pub(crate) enum Logged<'v> {
    /// Nothing changed: nothing to log.
    Unchanged,
    /// The key changed: its state is read back from the store for the record.
    Changed,
    /// The key now holds `value`, expiring at `deadline` (Unix ms): no need to read it back.
    Stored { value: &'v [u8], deadline: Option<u64> },
    /// The key changed as replaying this command (deterministic, and applied to the state the
    /// log already gives the key) changes it: how a write to one element of a large collection
    /// is logged without copying the collection.
    Command(&'v [&'v [u8]]),
    /// [`Logged::Command`] for a command the write computed (HINCRBYFLOAT's HSET of its result,
    /// SPOP's SREM of what it popped), already encoded.
    Encoded(Vec<u8>),
}

/// What one append adds to the log: the database its commands are for (`None`: any), the
/// commands, and whether there are several that a replay must apply all or none of (wrapped
/// in MULTI and EXEC unless a transaction already wraps them).
struct Record {
    db: Option<usize>,
    commands: Vec<u8>,
    whole: bool,
}

impl Record {
    fn single(db: Option<usize>, commands: Vec<u8>) -> Self {
        Record { db, commands, whole: false }
    }
}

impl From<bool> for Logged<'_> {
    fn from(changed: bool) -> Self {
        if changed { Logged::Changed } else { Logged::Unchanged }
    }
}

/// The commands that give `key` its `state` (value and deadline), or delete it: one SET for
/// a string; DEL and the collection rebuilt (see [`resp::encode_value`]) otherwise.
fn record_of(key: &[u8], state: Option<(&Value, Option<u64>)>) -> Vec<u8> {
    let mut record = Vec::with_capacity(48 + key.len() + state.map_or(0, |(value, _)| value.memory()));
    match state {
        Some((Value::String(value), deadline)) => return string_record(key, value, deadline),
        Some((collection, deadline)) => {
            resp::encode(&mut record, &[b"DEL", key]);
            resp::encode_value(&mut record, key, collection, deadline).expect("a Vec takes every write");
        }
        None => resp::encode(&mut record, &[b"DEL", key]),
    }
    record
}

/// The SET that gives `key` the string `value` and `deadline`.
fn string_record(key: &[u8], value: &[u8], deadline: Option<u64>) -> Vec<u8> {
    let mut record = Vec::with_capacity(48 + key.len() + value.len());
    match deadline {
        None => resp::encode(&mut record, &[b"SET", key, value]),
        Some(at) => resp::encode(&mut record, &[b"SET", key, value, b"PXAT", at.to_string().as_bytes()]),
    }
    record
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// BGREWRITEAOF with the AOF on.
    Rewrite,
    /// `appendonly` turned on: the base and a first incremental file.
    Enable,
    /// BGREWRITEAOF with the AOF off: a base alone.
    Standalone,
}

/// Creates incremental file `seq`, starting with SELECT 0, on disk with its directory entry.
fn new_incr(dir: &Path, config: &PersistenceConfig, seq: u64) -> io::Result<(Arc<IncrFile>, AofFile)> {
    let name = aof::incr_name(&config.appendfilename, seq);
    let path = dir.join(&name);
    let mut file = OpenOptions::new().create(true).truncate(true).write(true).open(&path)?;
    file.write_all(&aof::select_db0())?;
    file.sync_all()?;
    File::open(dir)?.sync_all()?;
    Ok((IncrFile::open(&path)?, AofFile { name, seq, kind: FileKind::Incr }))
}

/// Replaces the manifest atomically: temporary file, fsync, rename, directory fsync.
fn write_manifest(dir: &Path, config: &PersistenceConfig, manifest: &Manifest) -> Result<(), file::SaveFileError> {
    let text = manifest.to_text();
    file::replace_atomically(dir, &aof::manifest_name(&config.appendfilename), |out| out.write_all(text.as_bytes()))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |meta| meta.len())
}

fn manifest_size(dir: &Path, manifest: &Manifest) -> u64 {
    manifest.base.iter().chain(&manifest.incrs).map(|file| file_len(&dir.join(&file.name))).sum()
}
