//! The persistence settings of `cstore serve`, with Redis's names (the config file's
//! `[persistence]` table spells them in camelCase, as the rest of the file).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::rdb::{LoadOptions, SaveOptions};
use super::rules::SaveRules;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PersistenceConfig {
    /// `dir`: where the snapshot and its temporary file are written.
    pub dir: PathBuf,
    /// `dbfilename`: the snapshot's file name in `dir`, loaded at startup if present.
    pub dbfilename: String,
    /// `save`: automatic save rules. Off by default, unlike Redis's "3600 1 300 100 60 10000":
    /// a store without a volume must neither litter its working directory nor refuse writes
    /// (MISCONF) when it cannot write there.
    pub save: SaveRules,
    /// `rdbcompression`: LZF for long strings.
    pub rdbcompression: bool,
    /// `rdbchecksum`: write and verify the CRC-64 trailer.
    pub rdbchecksum: bool,
    /// `stop-writes-on-bgsave-error`: refuse writes with MISCONF after a failed save while
    /// save rules are set.
    pub stop_writes_on_bgsave_error: bool,
    /// `rdb-skip-unsupported-types` (cstore's): load a Redis file holding hashes, lists and
    /// other types by skipping those keys, instead of refusing to start.
    pub rdb_skip_unsupported_types: bool,
    /// `rdb-skip-other-dbs` (cstore's): skip keys of databases other than 0 likewise.
    pub rdb_skip_other_dbs: bool,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        PersistenceConfig {
            dir: PathBuf::from("."),
            dbfilename: "dump.rdb".to_owned(),
            save: SaveRules::default(),
            rdbcompression: true,
            rdbchecksum: true,
            stop_writes_on_bgsave_error: true,
            rdb_skip_unsupported_types: false,
            rdb_skip_other_dbs: false,
        }
    }
}

impl PersistenceConfig {
    /// Redis's check: the file name is a name, not a path (the directory is `dir`).
    pub fn validate(&self) -> Result<(), String> {
        if self.dbfilename.is_empty() || self.dbfilename.contains('/') || matches!(self.dbfilename.as_str(), "." | "..")
        {
            return Err(format!("dbfilename can't be a path, just a filename, got {:?}", self.dbfilename));
        }
        Ok(())
    }

    /// Where the snapshot is.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.dbfilename)
    }

    pub fn load_options(&self, now_ms: u64) -> LoadOptions {
        LoadOptions {
            skip_unsupported_types: self.rdb_skip_unsupported_types,
            skip_other_dbs: self.rdb_skip_other_dbs,
            verify_checksum: self.rdbchecksum,
            now_ms,
        }
    }

    pub fn save_options(&self) -> SaveOptions {
        SaveOptions { compression: self.rdbcompression, checksum: self.rdbchecksum }
    }
}
