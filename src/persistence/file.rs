//! Crash-safe replacement of the snapshot file, as Redis's `rdbSave`: write a temporary file
//! `temp-<pid>.rdb` in the same directory, fsync it, rename it over the target, fsync the
//! directory. A rename within a directory is atomic, so a reader (or a restart after a
//! crash) sees the old file or the new one, whole; the directory fsync makes the rename
//! itself survive a power loss. A failure before the rename removes the temporary file
//! and leaves the old snapshot as it was.

use std::fs::File;
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};

/// Writes are batched into blocks of this size before they reach the file.
const WRITE_BUFFER: usize = 1 << 20;

/// Which step of a save failed, on which path.
#[derive(Debug, thiserror::Error)]
#[error("{step} {}: {source}", path.display())]
pub struct SaveFileError {
    pub step: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The temporary file a save in this process writes before renaming it (Redis's name).
pub fn temp_path(dir: &Path) -> PathBuf {
    dir.join(format!("temp-{}.rdb", std::process::id()))
}

/// Replaces `dir/file_name` with what `write` writes, or leaves it untouched on any error
/// (of `write` itself too). Returns what `write` returned.
pub fn replace_atomically<T>(
    dir: &Path,
    file_name: &str,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<T>,
) -> Result<T, SaveFileError> {
    let temp = temp_path(dir);
    let target = dir.join(file_name);
    let file = File::create(&temp).map_err(fail("cannot create the temporary file", &temp))?;
    let written = write_and_sync(file, write).map_err(fail("cannot write the temporary file", &temp));
    let renamed = written.and_then(|value| {
        std::fs::rename(&temp, &target).map_err(fail("cannot rename the temporary file to", &target))?;
        Ok(value)
    });
    let value = match renamed {
        Ok(value) => value,
        Err(error) => {
            // Best effort: the error that matters is the one being returned.
            let _ = std::fs::remove_file(&temp);
            return Err(error);
        }
    };
    // After the rename the new file is in place; only its durability across a power loss
    // depends on this fsync, which a directory that cannot be opened for it makes impossible.
    File::open(dir).and_then(|d| d.sync_all()).map_err(fail("cannot fsync the directory", dir))?;
    Ok(value)
}

/// Turns an I/O error of `step` on `path` into a [`SaveFileError`].
fn fail(step: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SaveFileError {
    let path = path.to_owned();
    move |source| SaveFileError { step, path, source }
}

fn write_and_sync<T>(file: File, write: impl FnOnce(&mut BufWriter<File>) -> io::Result<T>) -> io::Result<T> {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
    let value = write(&mut out)?;
    out.flush()?;
    let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_save_replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dump.rdb"), b"old").unwrap();
        let n = replace_atomically(dir.path(), "dump.rdb", |out| out.write_all(b"new").map(|()| 3)).unwrap();
        assert_eq!(n, 3);
        assert_eq!(std::fs::read(dir.path().join("dump.rdb")).unwrap(), b"new");
        assert!(!temp_path(dir.path()).exists());
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_the_temporary_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dump.rdb"), b"old").unwrap();
        let error = replace_atomically(dir.path(), "dump.rdb", |out| {
            out.write_all(b"half")?;
            Err::<(), _>(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cannot write the temporary file {}: disk full", temp_path(dir.path()).display())
        );
        assert_eq!(std::fs::read(dir.path().join("dump.rdb")).unwrap(), b"old");
        assert!(!temp_path(dir.path()).exists());
    }

    #[test]
    fn a_missing_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let error = replace_atomically(&missing, "dump.rdb", |_| Ok(())).unwrap_err();
        assert!(error.to_string().starts_with("cannot create the temporary file"), "{error}");
        assert!(error.to_string().contains("missing/temp-"), "{error}");
    }
}
