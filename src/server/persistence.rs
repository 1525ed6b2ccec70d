//! Snapshots in the running server: SAVE and BGSAVE (one at a time), save rules checked as
//! Redis's `serverCron` does, the dirty counter, `stop-writes-on-bgsave-error`, the final
//! save at shutdown, the startup load, and INFO persistence.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::command::CommandError;
use super::command::server::{InfoSection, redis_version};
use super::config::RuntimeSettings;
use super::metrics::Metrics;
use crate::engine::{Databases, PointInTime};
use crate::persistence::aof::{self, manifest::Manifest};
use crate::persistence::progress::LoadProgress;
use crate::persistence::rdb::LoadReport;
use crate::persistence::rules::SaveClock;
use crate::persistence::snapshot::{self, SaveError, SaveReport};

/// How often the save rules are checked (Redis's serverCron runs at 10 Hz too).
pub(crate) const CRON_INTERVAL: Duration = Duration::from_millis(100);

/// Redis's exact `-LOADING` error, for commands without the `loading` flag during the load.
pub(crate) const LOADING: &str = "LOADING Redis is loading the dataset in memory";

/// Redis's exact `-MISCONF` error, so clients and operators recognise it.
pub(crate) const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to \
     persist to disk. Commands that may modify the data set are disabled, because this instance is configured to \
     report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the \
     Redis logs for details about the RDB error.";

/// How long FLUSHALL waits for a save under way (which the flush cuts short) before leaving
/// its own save to the cron.
const FLUSH_SAVE_PATIENCE: Duration = Duration::from_secs(5);

pub(crate) const ALREADY_IN_PROGRESS: &str = "ERR Background save already in progress";

/// What everything that saves shares. Writes touch only the two atomics.
pub(crate) struct Persistence {
    databases: Arc<Databases>,
    settings: Arc<RuntimeSettings>,
    metrics: Arc<Metrics>,
    /// Writes since the last successful save (`rdb_changes_since_last_save`).
    dirty: AtomicU64,
    /// Whether the last save failed: the one thing a write reads before running.
    last_failed: AtomicBool,
    /// True from startup until the data is loaded: commands without Redis's `loading` flag
    /// are answered `-LOADING` meanwhile (read by every command: one relaxed load).
    loading: AtomicBool,
    /// How far the startup load has read, and when it began (unix seconds).
    progress: LoadProgress,
    loading_started_unix: AtomicU64,
    status: Mutex<Status>,
}

struct Status {
    /// When the save under way started, and whether it is a BGSAVE.
    running: Option<(Instant, bool)>,
    /// BGSAVE SCHEDULE, or a save cut short by FLUSHALL: start one when none runs.
    scheduled: bool,
    /// `dirty` when the running save took its cut: what a success subtracts.
    dirty_at_start: u64,
    last_success_unix: u64,
    last_attempt_unix: u64,
    last_duration_secs: Option<u64>,
    saves: u64,
    loaded: Option<LoadReport>,
}

/// Why a save could not start.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AlreadySaving;

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |now| now.as_secs())
}

impl Persistence {
    pub(crate) fn new(databases: Arc<Databases>, settings: Arc<RuntimeSettings>, metrics: Arc<Metrics>) -> Self {
        let now = unix_now();
        Persistence {
            databases,
            settings,
            metrics,
            dirty: AtomicU64::new(0),
            last_failed: AtomicBool::new(false),
            loading: AtomicBool::new(true),
            progress: LoadProgress::default(),
            loading_started_unix: AtomicU64::new(now),
            status: Mutex::new(Status {
                running: None,
                scheduled: false,
                dirty_at_start: 0,
                // As Redis: LASTSAVE is the startup time until the first save.
                last_success_unix: now,
                last_attempt_unix: now,
                last_duration_secs: None,
                saves: 0,
                loaded: None,
            }),
        }
    }

    /// Loads the data into the (empty) store while clients are answered `-LOADING`: the AOF
    /// with `appendonly yes` (its manifest is returned, for the AOF to continue), else, or
    /// when there is no AOF yet, the snapshot file.
    pub(crate) fn load_at_startup(&self) -> anyhow::Result<Option<Manifest>> {
        self.loading_started_unix.store(unix_now(), Relaxed);
        let config = self.settings.persistence();
        if config.appendonly {
            let dir = config.aof_dir();
            let started = Instant::now();
            let span = tracing::info_span!("aof load", dir = %dir.display());
            let options = config.load_options(self.databases.now_ms(), self.databases.count());
            let manifest_name = aof::manifest_name(&config.appendfilename);
            let loaded =
                span.in_scope(|| aof::load::load(&dir, &manifest_name, &self.databases, options, &self.progress))?;
            if let Some((manifest, report)) = loaded {
                if let Some((path, dropped)) = &report.truncated {
                    tracing::warn!(
                        path = %path.display(),
                        dropped_bytes = dropped,
                        "!!! Warning: short read while loading the AOF file: the torn last command was \
                         cut off (aof-load-truncated yes) !!!"
                    );
                }
                tracing::info!(
                    dir = %dir.display(),
                    files = report.files,
                    commands = report.commands,
                    keys = report.keys,
                    seconds = started.elapsed().as_secs_f64(),
                    "DB loaded from append only file"
                );
                self.status.lock().loaded = Some(LoadReport { keys_loaded: report.keys, ..LoadReport::default() });
                return Ok(Some(manifest));
            }
            tracing::info!(dir = %dir.display(), "no AOF yet: loading the snapshot, if any, to start the AOF from");
        }
        let started = Instant::now();
        let span = tracing::info_span!("rdb load", path = %config.path().display());
        let report = span.in_scope(|| snapshot::load(&self.databases, &config, &self.progress))?;
        match &report {
            Some(report) => tracing::info!(
                path = %config.path().display(),
                keys = report.keys_loaded,
                expired = report.keys_expired,
                skipped = report.keys_skipped + report.other_skipped,
                written_by = report.written_by.as_deref().unwrap_or("unknown"),
                seconds = started.elapsed().as_secs_f64(),
                "DB loaded from disk"
            ),
            None => tracing::info!(path = %config.path().display(), "no snapshot file: starting empty"),
        }
        self.status.lock().loaded = report;
        Ok(None)
    }

    /// The data is in: commands are served from now on.
    pub(crate) fn finish_loading(&self) {
        self.loading.store(false, Relaxed);
    }

    pub(crate) fn is_loading(&self) -> bool {
        self.loading.load(Relaxed)
    }

    /// After FLUSHDB or FLUSHALL removed `removed` keys: they count as changes, as Redis's.
    pub(crate) fn flushed(&self, removed: usize) {
        self.dirty.fetch_add(removed as u64, Relaxed);
    }

    /// Counts one executed write command.
    pub(crate) fn record_write(&self) {
        self.dirty.fetch_add(1, Relaxed);
    }

    /// After FLUSHALL removed `removed` keys, as Redis's `flushAllDataAndResetRDB`: they
    /// count as changes, and with save rules set the empty store is saved before the reply
    /// (a save under way is abandoned by the flush and waited for). The command's own change
    /// is counted after this, so `rdb_changes_since_last_save` reads 1 after a saved FLUSHALL,
    /// as in Redis.
    pub(crate) fn flushed_all(&self, removed: usize) {
        self.flushed(removed);
        if !self.settings.saves_configured() {
            return;
        }
        let deadline = Instant::now() + FLUSH_SAVE_PATIENCE;
        loop {
            // The command holds a pass or an EXEC's exclusivity: the cut must take neither.
            let saved = self.begin(false).map(|()| self.run(|| self.databases.try_snapshot_in_command()));
            match saved {
                // A failure is logged and reported (MISCONF) as for any save; Redis too
                // answers FLUSHALL OK whatever its save gave.
                Ok(_) => return,
                Err(AlreadySaving) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                Err(AlreadySaving) => {
                    tracing::warn!("a save still runs after FLUSHALL: the empty store is saved after it");
                    self.schedule();
                    return;
                }
            }
        }
    }

    /// Refuses a write after a failed save, as Redis's `stop-writes-on-bgsave-error`.
    pub(crate) fn check_writes_allowed(&self) -> Result<(), CommandError> {
        if self.last_failed.load(Relaxed)
            && self.settings.stop_writes_on_bgsave_error()
            && self.settings.saves_configured()
        {
            return Err(CommandError::Other(MISCONF.to_owned()));
        }
        Ok(())
    }

    fn begin(&self, background: bool) -> Result<(), AlreadySaving> {
        let mut status = self.status.lock();
        if status.running.is_some() {
            return Err(AlreadySaving);
        }
        status.running = Some((Instant::now(), background));
        status.scheduled = false;
        status.dirty_at_start = self.dirty.load(Relaxed);
        status.last_attempt_unix = unix_now();
        Ok(())
    }

    /// Saves now and returns when done (SAVE, SHUTDOWN). The caller is blocked; other
    /// clients are served meanwhile.
    pub(crate) fn save(&self) -> Result<Result<SaveReport, SaveError>, AlreadySaving> {
        self.begin(false)?;
        Ok(self.run(|| Some(self.databases.snapshot())))
    }

    /// Starts a save on its own thread (BGSAVE, save rules).
    pub(crate) fn background_save(self: &Arc<Self>) -> Result<(), AlreadySaving> {
        self.begin(true)?;
        let persistence = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("bgsave".into()).spawn(move || {
            let databases = &persistence.databases;
            drop(persistence.run(|| Some(databases.snapshot())));
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the background save thread");
            self.finish(&Err(SaveError::File(crate::persistence::file::SaveFileError {
                step: "cannot start the save thread for",
                path: self.settings.persistence().path(),
                source: error,
            })));
        }
        Ok(())
    }

    /// BGSAVE SCHEDULE while a save runs: one more starts after it.
    pub(crate) fn schedule(&self) {
        self.status.lock().scheduled = true;
    }

    /// Saves from the cut `take_cut` gives (see [`snapshot::save_from`]).
    fn run<'d>(
        &'d self,
        take_cut: impl FnMut() -> Option<Vec<(usize, PointInTime<'d>)>>,
    ) -> Result<SaveReport, SaveError> {
        let config = self.settings.persistence();
        let span = tracing::info_span!("rdb save", path = %config.path().display());
        let result = span.in_scope(|| snapshot::save_from(take_cut, &self.databases, &config, redis_version()));
        self.finish(&result);
        result
    }

    fn finish(&self, result: &Result<SaveReport, SaveError>) {
        let mut status = self.status.lock();
        let started = status.running.take().map(|(started, _)| started);
        status.last_duration_secs = started.map(|started| started.elapsed().as_secs());
        match result {
            Ok(report) => {
                let saved = status.dirty_at_start;
                let _ = self.dirty.fetch_update(Relaxed, Relaxed, |dirty| Some(dirty.saturating_sub(saved)));
                status.last_success_unix = unix_now();
                status.saves += 1;
                self.last_failed.store(false, Relaxed);
                self.metrics.rdb_save_finished(Some(report.duration));
                tracing::info!(keys = report.keys, seconds = report.duration.as_secs_f64(), "DB saved on disk");
            }
            Err(error @ (SaveError::Flushed | SaveError::Busy)) => {
                // Saved next, if anything is to be saved.
                status.scheduled = self.settings.saves_configured();
                tracing::info!(%error, "save put off");
            }
            Err(error) => {
                self.last_failed.store(true, Relaxed);
                self.metrics.rdb_save_finished(None);
                tracing::error!(%error, "snapshot save failed; the previous file is unchanged");
            }
        }
    }

    /// One `serverCron` step: starts a background save if one is scheduled or a save rule
    /// is due.
    pub(crate) fn cron(self: &Arc<Self>) {
        let due = {
            let status = self.status.lock();
            if status.running.is_some() {
                return;
            }
            let clock = SaveClock {
                now: unix_now(),
                dirty: self.dirty.load(Relaxed),
                last_success: status.last_success_unix,
                last_attempt: status.last_attempt_unix,
                last_failed: self.last_failed.load(Relaxed),
            };
            status.scheduled || self.settings.persistence().save.due(clock).is_some()
        };
        if due {
            // Lost only to a SAVE that started in between, which saves as well.
            let _ = self.background_save();
        }
    }

    /// LASTSAVE: the time of the last successful save (startup before the first).
    pub(crate) fn last_save_unix(&self) -> u64 {
        self.status.lock().last_success_unix
    }

    /// INFO's `# Persistence` section, with Redis's field names; `aof` adds the AOF's.
    pub(crate) fn info(&self, aof: impl FnOnce(InfoSection) -> InfoSection) -> String {
        let status = self.status.lock();
        let background = status.running.filter(|&(_, background)| background);
        let loaded = status.loaded.as_ref();
        let seconds = |value: Option<u64>| value.map_or(-1, |secs| i64::try_from(secs).unwrap_or(i64::MAX));
        let loading = self.is_loading();
        let mut section = InfoSection::new("Persistence").field("loading", u8::from(loading)).field("async_loading", 0);
        if loading {
            // Redis's progress fields, shown only while loading as Redis does.
            let started = self.loading_started_unix.load(Relaxed);
            let (total, loaded) = (self.progress.total_bytes(), self.progress.loaded_bytes());
            let elapsed = unix_now().saturating_sub(started);
            let eta = elapsed.saturating_mul(total.saturating_sub(loaded)).checked_div(loaded).unwrap_or(1);
            let percent = if total == 0 { 0.0 } else { loaded as f64 * 100.0 / total as f64 };
            section = section
                .field("loading_start_time", started)
                .field("loading_total_bytes", total)
                .field("loading_loaded_bytes", loaded)
                .field("loading_loaded_perc", format!("{percent:.2}"))
                .field("loading_eta_seconds", eta);
        }
        let section = section
            .field("rdb_changes_since_last_save", self.dirty.load(Relaxed))
            .field("rdb_bgsave_in_progress", u8::from(background.is_some()))
            .field("rdb_last_save_time", status.last_success_unix)
            .field("rdb_last_bgsave_status", if self.last_failed.load(Relaxed) { "err" } else { "ok" })
            .field("rdb_last_bgsave_time_sec", seconds(status.last_duration_secs))
            .field("rdb_current_bgsave_time_sec", seconds(background.map(|(started, _)| started.elapsed().as_secs())))
            .field("rdb_saves", status.saves)
            .field("rdb_last_load_keys_expired", loaded.map_or(0, |report| report.keys_expired))
            .field("rdb_last_load_keys_loaded", loaded.map_or(0, |report| report.keys_loaded));
        aof(section).finish()
    }
}
