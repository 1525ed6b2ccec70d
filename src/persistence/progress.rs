//! How far a startup load has read, for INFO's `loading_*` fields while it runs.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Bytes to read and bytes read so far, over every file a load reads. Relaxed counters: INFO
/// shows an estimate, and nothing else depends on them.
#[derive(Debug, Default)]
pub struct LoadProgress {
    total: AtomicU64,
    loaded: AtomicU64,
}

impl LoadProgress {
    /// Adds a file's size to what the load will read.
    pub fn add_total(&self, bytes: u64) {
        self.total.fetch_add(bytes, Relaxed);
    }

    /// `inner`, counting what is read through it.
    pub fn reader<R: Read>(&self, inner: R) -> CountingReader<'_, R> {
        CountingReader { inner, progress: self }
    }

    pub fn total_bytes(&self) -> u64 {
        self.total.load(Relaxed)
    }

    pub fn loaded_bytes(&self) -> u64 {
        self.loaded.load(Relaxed)
    }
}

/// A reader that adds every byte it reads to a [`LoadProgress`].
pub struct CountingReader<'a, R> {
    inner: R,
    progress: &'a LoadProgress,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.progress.loaded.fetch_add(read as u64, Relaxed);
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_is_read_through_it() {
        let progress = LoadProgress::default();
        progress.add_total(10);
        let mut out = Vec::new();
        progress.reader(&b"0123456789"[..6]).read_to_end(&mut out).unwrap();
        assert_eq!((progress.loaded_bytes(), progress.total_bytes()), (6, 10));
    }
}
