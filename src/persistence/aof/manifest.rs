//! Redis 7's AOF manifest (`aof.c`, `aofLoadManifestFromFile`): one line per file,
//! `file <name> seq <n> type <b|h|i>`, the base first, then the incremental files in the
//! order they are replayed. `h` (history) files are leftovers of a rewrite, to be deleted.

use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Base,
    History,
    Incr,
}

impl FileKind {
    fn letter(self) -> char {
        match self {
            FileKind::Base => 'b',
            FileKind::History => 'h',
            FileKind::Incr => 'i',
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AofFile {
    pub name: String,
    pub seq: u64,
    pub kind: FileKind,
}

/// The files of one AOF, as its manifest lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub base: Option<AofFile>,
    pub history: Vec<AofFile>,
    pub incrs: Vec<AofFile>,
}

/// The most a manifest line may hold, as Redis's `AOF_MANIFEST_MAX_LINE`... with room: a
/// longer line is refused rather than read without bound.
const MAX_LINE: usize = 1024;

impl Manifest {
    /// Parses a manifest as Redis writes it; errors say which line is wrong and why.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let mut manifest = Manifest::default();
        for (number, line) in text.lines().enumerate() {
            let number = number + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.len() > MAX_LINE {
                return Err(format!("line {number} is longer than {MAX_LINE} bytes"));
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            if !words.len().is_multiple_of(2) {
                return Err(format!("line {number} is not a list of key value pairs: {line:?}"));
            }
            let (mut name, mut seq, mut kind) = (None, None, None);
            for pair in words.chunks_exact(2) {
                match pair[0] {
                    "file" => name = Some(pair[1]),
                    "seq" => seq = pair[1].parse::<u64>().ok(),
                    "type" => {
                        kind = match pair[1] {
                            "b" => Some(FileKind::Base),
                            "h" => Some(FileKind::History),
                            "i" => Some(FileKind::Incr),
                            _ => None,
                        }
                    }
                    // Redis ignores keys it does not know (room for later versions).
                    _ => {}
                }
            }
            let (Some(name), Some(seq), Some(kind)) = (name, seq, kind) else {
                return Err(format!("line {number} lacks a valid file, seq or type: {line:?}"));
            };
            if name.starts_with('"') || name.contains('/') {
                return Err(format!("line {number} names a file cstore does not accept: {name}"));
            }
            let file = AofFile { name: name.to_owned(), seq, kind };
            match kind {
                FileKind::Base if manifest.base.is_some() => {
                    return Err(format!("line {number}: a second base file"));
                }
                FileKind::Base => manifest.base = Some(file),
                FileKind::History => manifest.history.push(file),
                FileKind::Incr => {
                    if manifest.incrs.last().is_some_and(|last| last.seq >= seq) {
                        return Err(format!("line {number}: incremental files out of order"));
                    }
                    manifest.incrs.push(file);
                }
            }
        }
        if manifest.base.is_none() && manifest.incrs.is_empty() {
            return Err("the manifest lists no base and no incremental file".to_owned());
        }
        Ok(manifest)
    }

    /// The manifest's text, in Redis's order (base, history, incrementals).
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for file in self.base.iter().chain(&self.history).chain(&self.incrs) {
            let _ = writeln!(text, "file {} seq {} type {}", file.name, file.seq, file.kind.letter());
        }
        text
    }

    /// The next base and incremental sequence numbers.
    pub fn next_base_seq(&self) -> u64 {
        self.base.as_ref().map_or(0, |base| base.seq) + 1
    }

    pub fn next_incr_seq(&self) -> u64 {
        self.incrs.last().map_or(0, |incr| incr.seq) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_redis_writes_and_writes_it_back() {
        let text = "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n\
                    file appendonly.aof.2.incr.aof seq 2 type i\n";
        let manifest = Manifest::parse(text).unwrap();
        assert_eq!(manifest.base.as_ref().unwrap().name, "appendonly.aof.1.base.rdb");
        assert_eq!(manifest.incrs.len(), 2);
        assert_eq!(manifest.to_text(), text);
        assert_eq!((manifest.next_base_seq(), manifest.next_incr_seq()), (2, 3));
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        for (text, expected) in [
            ("", "no base"),
            ("file a seq 1\n", "lacks"),
            ("file a seq x type b\n", "lacks"),
            ("file a seq 1 type z\n", "lacks"),
            ("file a seq 1 type b extra\n", "key value"),
            ("file ../a seq 1 type b\n", "does not accept"),
            ("file a seq 1 type b\nfile b seq 2 type b\n", "second base"),
            ("file a seq 2 type i\nfile b seq 1 type i\n", "out of order"),
        ] {
            let error = Manifest::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
