//! The databases to and from their snapshot file: [`save`] writes the engine's point-in-time
//! cut of every database through the RDB writer into a crash-safe file replacement; [`load`]
//! fills the databases from the file at startup.

use std::io;
use std::time::{Duration, Instant};

use super::config::PersistenceConfig;
use super::file::{self, SaveFileError};
use super::progress::LoadProgress;
use super::rdb::{self, LoadReport, RdbError, RdbHeader, RdbWriter};
use crate::engine::{Databases, PointInTime, SetExpiry, SetOptions};

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
    /// FLUSHALL or FLUSHDB ran during every attempt of the save: the previous file stays. Not
    /// a failure of the disk (Redis likewise kills its saving child on FLUSHALL without an
    /// error).
    #[error("databases were flushed during the save, again and again; the previous snapshot file is unchanged")]
    Flushed,
    /// A migration or another snapshot walks the databases, and the caller could not wait.
    #[error("a migration or another snapshot runs; the save is scheduled after it")]
    Busy,
}

/// Flushes a save survives by taking a new cut: a FLUSHDB during the walk of its database
/// leaves that database's cut without the versions it needs (Redis's child would go on with
/// its fork; a fresh cut is the forkless equivalent).
const FLUSHED_RETRIES: usize = 3;

/// Saves every database to `dir/dbfilename`, each database with keys as its own section
/// (SELECTDB n), as redis-server does, from a cut taken now (waiting for a migration or
/// snapshot under way). Writers go on meanwhile; the file holds exactly the keys live at the
/// cut, in every database. The caller holds no pass.
pub fn save(databases: &Databases, config: &PersistenceConfig, redis_version: &str) -> Result<SaveReport, SaveError> {
    save_from(|| Some(databases.snapshot()), databases, config, redis_version)
}

/// [`save`] from the cuts `take_cut` gives (`None`: not to be had now, the save is
/// [`SaveError::Busy`]).
pub fn save_from<'d>(
    mut take_cut: impl FnMut() -> Option<Vec<(usize, PointInTime<'d>)>>,
    databases: &Databases,
    config: &PersistenceConfig,
    redis_version: &str,
) -> Result<SaveReport, SaveError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let cut = take_cut().ok_or(SaveError::Busy)?;
        match save_cut(cut, databases, config, redis_version) {
            Err(SaveError::Flushed) if attempt < FLUSHED_RETRIES => continue,
            result => return result,
        }
    }
}

fn save_cut(
    cut: Vec<(usize, PointInTime<'_>)>,
    databases: &Databases,
    config: &PersistenceConfig,
    redis_version: &str,
) -> Result<SaveReport, SaveError> {
    // The walk and the writing, not the wait for the cut (behind a migration, say).
    let started = Instant::now();
    // Every database is cut at the same instant; 0 cuts only if no database was ever created.
    let cut_ms = cut.first().map_or_else(|| databases.now_ms(), |(_, database)| database.cut_ms());
    let header =
        RdbHeader { redis_version, ctime_secs: cut_ms / 1000, used_mem: databases.memory_bytes(), aof_base: false };
    let mut flushed = false;
    let written = file::replace_atomically(&config.dir, &config.dbfilename, |out| {
        let mut writer = RdbWriter::new(out, config.save_options(), &header)?;
        let written = writer.databases(cut)?;
        if written.flushed {
            flushed = true;
            return Err(io::Error::other("flushed"));
        }
        writer.finish()?;
        Ok(written.keys)
    });
    match written {
        Ok(keys) => Ok(SaveReport { keys, duration: started.elapsed() }),
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

/// Fills `databases` from `dir/dbfilename`, each key into the database the file names (a
/// key of a database beyond `databases.count()` stops the load, or is skipped with
/// `rdb-skip-other-dbs`); `None` when there is no such file (a first start). The file is
/// only read. What was read goes to `progress`.
pub fn load(
    databases: &Databases,
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
    let options = config.load_options(databases.now_ms(), databases.count());
    // The reader refuses strings, fields and members over MAX_STRING_LEN, naming the key,
    // and keys of databases beyond `databases`.
    let report = rdb::load(progress.reader(file), &options, &databases.encoding_limits(), |key| {
        let store = databases.get(key.db).ok_or_else(|| format!("database {} does not exist", key.db))?;
        let expiry = key.expires_at_ms.map_or(SetExpiry::Clear, SetExpiry::At);
        store.put(&key.key, key.value.clone(), SetOptions { expiry, ..SetOptions::default() });
        Ok(())
    })
    .map_err(|source| LoadError::Rdb { path: shown(), source })?;
    Ok(Some(report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Clock, ManualClock, Store, Value};
    use crate::persistence::rdb::RdbError;
    use crate::persistence::test_support::contents;

    const NOW_MS: u64 = 1_700_000_000_000;

    fn databases(count: usize) -> Databases {
        Store::builder().clock(Clock::Manual(ManualClock::new(NOW_MS))).build_databases(count).unwrap()
    }

    /// Strings, hashes and sets, some with deadlines, in databases 0, 3 and 15; the same key
    /// name in several of them.
    fn filled() -> Databases {
        let databases = databases(16);
        let later = |ms| SetOptions { expiry: SetExpiry::At(NOW_MS + ms), ..SetOptions::default() };
        for number in [0, 3, 15] {
            let store = databases.get(number).unwrap();
            store.put(b"name", Value::from(format!("db {number}")), SetOptions::default());
            store.put(format!("only in {number}").as_bytes(), Value::from("x"), later(1000 * number as u64 + 1));
            store.hset(b"hash", &[(b"db", number.to_string().as_bytes()), (b"f", b"v")]).unwrap();
            store.sadd(b"set", &[b"a", number.to_string().as_bytes()]).unwrap();
        }
        databases.get(15).unwrap().expire_at(b"hash", NOW_MS + 60_000, Default::default());
        databases
    }

    fn config(dir: &std::path::Path) -> PersistenceConfig {
        PersistenceConfig { dir: dir.to_owned(), ..PersistenceConfig::default() }
    }

    #[test]
    fn every_database_round_trips_with_its_deadlines() {
        let dir = tempfile::tempdir().unwrap();
        let saved = filled();
        assert_eq!(save(&saved, &config(dir.path()), "7.0.0").unwrap().keys, 12);
        let loaded = databases(16);
        let report = load(&loaded, &config(dir.path()), &LoadProgress::default()).unwrap().unwrap();
        assert_eq!(report.keys_loaded, 12);
        assert_eq!(contents(&loaded), contents(&saved));
        assert_eq!(loaded.get(15).unwrap().get(b"name").unwrap().as_deref(), Some(&b"db 15"[..]));
        assert_eq!(loaded.get(15).unwrap().get_with_deadline(b"hash").unwrap().1, Some(NOW_MS + 60_000));
        // Databases the file does not name stay unused.
        assert_eq!(loaded.created().count(), 3);
    }

    #[test]
    fn databases_beyond_databases_stop_the_load_unless_skipped() {
        let dir = tempfile::tempdir().unwrap();
        save(&filled(), &config(dir.path()), "7.0.0").unwrap();
        let error = load(&databases(4), &config(dir.path()), &LoadProgress::default()).unwrap_err();
        assert!(
            matches!(&error, LoadError::Rdb { source: RdbError::OtherDatabase { db: 15, databases: 4, .. }, .. }),
            "{error}"
        );
        let skipping = PersistenceConfig { rdb_skip_other_dbs: true, ..config(dir.path()) };
        let four = databases(4);
        let report = load(&four, &skipping, &LoadProgress::default()).unwrap().unwrap();
        assert_eq!((report.keys_loaded, report.keys_skipped), (8, 4));
        let numbers: Vec<usize> = contents(&four).iter().map(|(number, ..)| *number).collect();
        assert_eq!(numbers, [0, 0, 0, 0, 3, 3, 3, 3]);
    }

    #[test]
    fn an_empty_server_saves_a_file_without_databases_that_loads_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(save(&databases(16), &config(dir.path()), "7.0.0").unwrap().keys, 0);
        let loaded = databases(16);
        assert_eq!(load(&loaded, &config(dir.path()), &LoadProgress::default()).unwrap().unwrap().keys_loaded, 0);
        assert!(loaded.is_empty());
    }
}
