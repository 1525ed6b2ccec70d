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
    /// `rdb-skip-other-dbs` (cstore's): load a file written by a server with more databases
    /// by skipping the keys of databases beyond `databases` (numbers `databases` and up),
    /// instead of refusing to start. Commands of an AOF on such databases still stop the
    /// load: skipping some would leave the others (a MOVE or SWAPDB with them) wrong.
    pub rdb_skip_other_dbs: bool,
    /// `appendonly`: log every write to the append-only file, and load it (not the snapshot)
    /// at startup.
    pub appendonly: bool,
    /// `appendfsync`: when the log reaches the disk.
    pub appendfsync: AppendFsync,
    /// `appenddirname`: the AOF's directory inside `dir`.
    pub appenddirname: String,
    /// `appendfilename`: the prefix of the AOF's file names.
    pub appendfilename: String,
    /// `auto-aof-rewrite-percentage`: rewrite when the AOF grew by this percentage over its
    /// size after the last rewrite (0: never automatically).
    pub auto_aof_rewrite_percentage: u64,
    /// `auto-aof-rewrite-min-size`: ... and is at least this many bytes.
    pub auto_aof_rewrite_min_size: u64,
    /// `aof-use-rdb-preamble`: the base file is an RDB (compact, fast to load) rather than
    /// commands.
    pub aof_use_rdb_preamble: bool,
}

/// `appendfsync`, Redis's three policies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AppendFsync {
    /// A write is acknowledged only once it is on disk (fsync), batched across clients.
    Always,
    /// The log is written before the reply and fsynced once a second: a power loss costs
    /// about a second of writes, a crash of the process none.
    #[default]
    Everysec,
    /// The log is written before the reply; the OS decides when it reaches the disk.
    No,
}

impl AppendFsync {
    pub const ALL: [AppendFsync; 3] = [AppendFsync::Always, AppendFsync::Everysec, AppendFsync::No];

    pub fn name(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::Everysec => "everysec",
            AppendFsync::No => "no",
        }
    }
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
            appendonly: false,
            appendfsync: AppendFsync::Everysec,
            appenddirname: "appendonlydir".to_owned(),
            appendfilename: "appendonly.aof".to_owned(),
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 << 20,
            aof_use_rdb_preamble: true,
        }
    }
}

impl PersistenceConfig {
    /// Redis's check: the file name is a name, not a path (the directory is `dir`).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.dbfilename.is_empty() || self.dbfilename.contains('/') || matches!(self.dbfilename.as_str(), "." | "..")
        {
            return Err((
                "persistence.dbfilename",
                format!("dbfilename can't be a path, just a filename, got {:?}", self.dbfilename),
            ));
        }
        for (field, name, value) in [
            ("persistence.appenddirname", "appenddirname", &self.appenddirname),
            ("persistence.appendfilename", "appendfilename", &self.appendfilename),
        ] {
            // Redis's rule, and no spaces: the manifest separates its fields with them.
            let bad = value.is_empty() || matches!(value.as_str(), "." | "..");
            if bad || value.contains(['/', ' ', '"', '\n', '\r', '\t']) {
                return Err((field, format!("{name} can't be a path, just a name without spaces, got {value:?}")));
            }
        }
        Ok(())
    }

    /// The AOF's directory.
    pub fn aof_dir(&self) -> PathBuf {
        self.dir.join(&self.appenddirname)
    }

    /// Where the snapshot is.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.dbfilename)
    }

    /// How to load into a server of `databases` databases whose clock reads `now_ms`.
    pub fn load_options(&self, now_ms: u64, databases: usize) -> LoadOptions {
        LoadOptions {
            skip_unsupported_types: self.rdb_skip_unsupported_types,
            skip_other_dbs: self.rdb_skip_other_dbs,
            databases,
            verify_checksum: self.rdbchecksum,
            now_ms,
        }
    }

    pub fn save_options(&self) -> SaveOptions {
        SaveOptions { compression: self.rdbcompression, checksum: self.rdbchecksum }
    }
}
