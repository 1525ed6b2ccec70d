//! The store to and from its snapshot file: [`save`] writes the engine's point-in-time cut
//! through the RDB writer into a crash-safe file replacement; [`load`] fills a store from
//! the file at startup.

use std::io;
use std::time::Duration;

use super::config::PersistenceConfig;
use super::file::{self, SaveFileError};
use super::progress::LoadProgress;
use super::rdb::{self, LoadReport, RdbError, RdbHeader, RdbWriter};
use crate::engine::{SetExpiry, SetOptions, SnapshotError, Store};

/// What a successful save wrote.
#[derive(Clone, Copy, Debug)]
pub struct SaveReport {
    pub keys: u64,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(transparent)]
    File(#[from] SaveFileError),
    /// FLUSHALL ran during the save: the cut is gone, the previous file stays. Not a failure
    /// of the disk (Redis likewise kills its saving child on FLUSHALL without an error).
    #[error("the store was flushed during the save; the previous snapshot file is unchanged")]
    Flushed,
}

/// Saves the store as it is now to `dir/dbfilename`. Writers go on meanwhile; the file holds
/// exactly the keys live at the moment of the call.
pub fn save(store: &Store, config: &PersistenceConfig, redis_version: &str) -> Result<SaveReport, SaveError> {
    let cut = store.snapshot();
    let header = RdbHeader {
        redis_version,
        ctime_secs: cut.cut_ms() / 1000,
        used_mem: store.memory_bytes(),
        keys: cut.keys(),
        volatile_keys: cut.volatile_keys(),
    };
    let mut flushed = false;
    let written = file::replace_atomically(&config.dir, &config.dbfilename, |out| {
        let mut writer = RdbWriter::new(out, config.save_options(), &header)?;
        let report = cut.for_each(|entry| writer.entry(entry.key, entry.value, entry.expires_at_ms));
        let report = match report {
            Ok(report) => report,
            Err(SnapshotError::Emit(error)) => return Err(error),
            Err(SnapshotError::Flushed) => {
                flushed = true;
                return Err(io::Error::other("flushed"));
            }
        };
        writer.finish()?;
        Ok(report)
    });
    match written {
        Ok(report) => Ok(SaveReport { keys: report.keys, duration: report.duration }),
        Err(_) if flushed => Err(SaveError::Flushed),
        Err(error) => Err(error.into()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot open the snapshot {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("cannot load the snapshot {path}: {source}")]
    Rdb { path: String, source: RdbError },
}

/// Fills `store` from `dir/dbfilename`; `None` when there is no such file (a first start).
/// The file is only read.
/// What was read goes to `progress`.
pub fn load(
    store: &Store,
    config: &PersistenceConfig,
    progress: &LoadProgress,
) -> Result<Option<LoadReport>, LoadError> {
    let path = config.path();
    let shown = || path.display().to_string();
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LoadError::Open { path: shown(), source }),
    };
    progress.add_total(file.metadata().map_or(0, |meta| meta.len()));
    let options = config.load_options(store.now_ms());
    // The reader refuses strings, fields and members over MAX_STRING_LEN, naming the key.
    let report = rdb::load(progress.reader(file), &options, &store.encoding_limits(), |key| {
        let expiry = key.expires_at_ms.map_or(SetExpiry::Clear, SetExpiry::At);
        store.put(&key.key, key.value.clone(), SetOptions { expiry, ..SetOptions::default() });
        Ok(())
    })
    .map_err(|source| LoadError::Rdb { path: shown(), source })?;
    Ok(Some(report))
}
