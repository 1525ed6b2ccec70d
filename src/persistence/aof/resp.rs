//! Commands as the AOF holds them: RESP arrays of bulk strings (`*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n`),
//! written by [`encode`] and read back by [`CommandReader`], which tells a file cut short in
//! the middle of a command (a torn write) from one that is wrong.

use std::io::{self, BufRead, Write};

use crate::engine::Value;

/// Fields or members per HSET or SADD a collection is rebuilt with, as Redis's rewrite
/// (`AOF_REWRITE_ITEMS_PER_CMD`): long enough to be cheap, short enough to replay lightly.
pub const ITEMS_PER_COMMAND: usize = 64;

/// Appends one command to `out`.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    array_header(out, args.len());
    for arg in args {
        bulk(out, arg);
    }
}

/// `*len\r\n`, the start of a command of `len` arguments.
fn array_header(out: &mut Vec<u8>, len: usize) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// One argument: `$len\r\n`, the bytes, `\r\n`.
fn bulk(out: &mut Vec<u8>, arg: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(arg.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

/// Writes the commands that recreate `key` holding `value` on an empty key, as Redis's rewrite
/// writes them: SET, or HSET / SADD of up to [`ITEMS_PER_COMMAND`] items each; then
/// PEXPIREAT when the key has a deadline (ms since the epoch). A collection is written a
/// command at a time as it is walked, so a huge one is never copied whole.
pub fn encode_value(out: &mut impl Write, key: &[u8], value: &Value, deadline: Option<u64>) -> io::Result<()> {
    let mut command = Vec::new();
    match value {
        Value::String(text) => encode(&mut command, &[b"SET", key, text]),
        Value::Hash(hash) => {
            let mut batch = Batch::new(&mut *out, b"HSET", key);
            hash.try_for_each(|field, value| batch.push(&[field, value]))?;
            batch.flush()?;
        }
        Value::Set(set) => {
            let mut batch = Batch::new(&mut *out, b"SADD", key);
            set.try_for_each(|member| batch.push(&[member]))?;
            batch.flush()?;
        }
    }
    if let Some(at) = deadline {
        encode(&mut command, &[b"PEXPIREAT", key, itoa::Buffer::new().format(at).as_bytes()]);
    }
    out.write_all(&command)
}

/// An HSET or SADD being filled with items, written out every [`ITEMS_PER_COMMAND`] of them.
struct Batch<'a, W> {
    out: &'a mut W,
    command: &'static [u8],
    key: &'a [u8],
    items: usize,
    /// The items' arguments, encoded.
    args: Vec<u8>,
    arg_count: usize,
}

impl<'a, W: Write> Batch<'a, W> {
    fn new(out: &'a mut W, command: &'static [u8], key: &'a [u8]) -> Self {
        Batch { out, command, key, items: 0, args: Vec::new(), arg_count: 0 }
    }

    fn push(&mut self, item: &[&[u8]]) -> io::Result<()> {
        for arg in item {
            bulk(&mut self.args, arg);
        }
        self.arg_count += item.len();
        self.items += 1;
        if self.items == ITEMS_PER_COMMAND { self.flush() } else { Ok(()) }
    }

    /// Writes the command with the items pushed since the last one, if any.
    fn flush(&mut self) -> io::Result<()> {
        if self.items == 0 {
            return Ok(());
        }
        let mut head = Vec::with_capacity(32 + self.key.len());
        array_header(&mut head, self.arg_count + 2);
        bulk(&mut head, self.command);
        bulk(&mut head, self.key);
        self.out.write_all(&head)?;
        self.out.write_all(&self.args)?;
        self.args.clear();
        (self.items, self.arg_count) = (0, 0);
        Ok(())
    }
}

/// Why a file could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The file ends inside the command that starts at `offset`.
    #[error("the file ends in the middle of the command at byte {offset}")]
    Truncated { offset: u64 },
    #[error("bad file format at byte {offset}: {reason}")]
    Corrupt { offset: u64, reason: String },
}

/// Header lines (`*3`, `$5`) longer than this are not RESP.
const MAX_HEADER: usize = 32;
/// Arguments per command and bytes per argument beyond which a file is taken as corrupt
/// (Redis's own limits: `proto-max-bulk-len` is at most 512 MiB by default, this is laxer).
const MAX_ARGS: u64 = 1 << 24;
const MAX_ARG_LEN: u64 = 1 << 32;

pub struct CommandReader<R> {
    input: R,
    offset: u64,
}

impl<R: BufRead> CommandReader<R> {
    pub fn new(input: R) -> Self {
        CommandReader { input, offset: 0 }
    }

    /// Bytes consumed so far: after `next` returned a command, where the next one starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next command; `None` at a clean end of the file.
    pub fn next_command(&mut self) -> Result<Option<Vec<Vec<u8>>>, ReadError> {
        loop {
            let start = self.offset;
            let Some(line) = self.line(start, true)? else { return Ok(None) };
            // Redis 7 annotations (`#TS:...`), which redis-check-aof writes and skips.
            if line.first() == Some(&b'#') {
                continue;
            }
            let argc = self.number(&line, b'*', start)?;
            if argc == 0 || argc > MAX_ARGS {
                return Err(ReadError::Corrupt { offset: start, reason: format!("{argc} arguments") });
            }
            let mut args = Vec::with_capacity(usize::try_from(argc.min(64)).unwrap_or(64));
            for _ in 0..argc {
                let at = self.offset;
                let line = self.line(start, false)?.ok_or(ReadError::Truncated { offset: start })?;
                let len = self.number(&line, b'$', at)?;
                if len > MAX_ARG_LEN {
                    return Err(ReadError::Corrupt { offset: at, reason: format!("an argument of {len} bytes") });
                }
                let len = usize::try_from(len).map_err(|_| ReadError::Corrupt { offset: at, reason: "size".into() })?;
                let mut arg = vec![0; len + 2];
                match self.input.read_exact(&mut arg) {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                        return Err(ReadError::Truncated { offset: start });
                    }
                    Err(error) => return Err(error.into()),
                }
                if !arg.ends_with(b"\r\n") {
                    return Err(ReadError::Corrupt { offset: at, reason: "an argument not followed by CRLF".into() });
                }
                arg.truncate(len);
                self.offset += len as u64 + 2;
                args.push(arg);
            }
            return Ok(Some(args));
        }
    }

    /// One CRLF-terminated line without its CRLF; `None` at the end of the file when
    /// `end_allowed` (between commands).
    fn line(&mut self, command_start: u64, end_allowed: bool) -> Result<Option<Vec<u8>>, ReadError> {
        let mut line = Vec::new();
        let read = io::Read::take(&mut self.input, MAX_HEADER as u64 + 2).read_until(b'\n', &mut line)?;
        if read == 0 && end_allowed {
            return Ok(None);
        }
        if !line.ends_with(b"\n") {
            if line.len() >= MAX_HEADER + 2 {
                return Err(ReadError::Corrupt { offset: self.offset, reason: "a line too long for RESP".into() });
            }
            return Err(ReadError::Truncated { offset: command_start });
        }
        if !line.ends_with(b"\r\n") {
            return Err(ReadError::Corrupt { offset: self.offset, reason: "a line not ended by CRLF".into() });
        }
        self.offset += read as u64;
        line.truncate(line.len() - 2);
        Ok(Some(line))
    }

    fn number(&self, line: &[u8], prefix: u8, at: u64) -> Result<u64, ReadError> {
        let digits = line.strip_prefix(&[prefix]).filter(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit));
        let number = digits.and_then(|d| std::str::from_utf8(d).ok()).and_then(|d| d.parse().ok());
        number.ok_or_else(|| ReadError::Corrupt {
            offset: at,
            reason: format!("expected '{}' and a number, found {:?}", prefix as char, line.escape_ascii().to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ReadError> {
        let mut reader = CommandReader::new(bytes);
        let mut commands = Vec::new();
        while let Some(command) = reader.next_command()? {
            commands.push(command);
        }
        Ok(commands)
    }

    #[test]
    fn a_collection_is_rebuilt_by_commands_of_at_most_64_items_in_walk_order() {
        use crate::engine::{EncodingLimits, Hash, Set};
        let limits = EncodingLimits::REDIS_DEFAULTS;
        let fields: Vec<(Vec<u8>, Vec<u8>)> =
            (0..600).map(|i| (format!("f{i}").into_bytes(), format!("v{i}").into_bytes())).collect();
        let hash = Hash::from_pairs(fields.iter().map(|(f, v)| (&f[..], &v[..])), &limits);
        let numbers: Vec<Vec<u8>> = (0..130).map(|i| (i * 7).to_string().into_bytes()).collect();
        let set = Set::from_members(numbers.iter().map(Vec::as_slice), &limits);
        let mut out = Vec::new();
        encode_value(&mut out, b"h", &Value::Hash(hash.clone().into()), Some(1_700_000_000_000)).unwrap();
        encode_value(&mut out, b"s", &Value::Set(set.clone().into()), None).unwrap();
        let commands = read_all(&out).unwrap();

        let (hsets, rest) = commands.split_at(10); // 600 fields: 9 of 64 and one of 24
        assert!(hsets.iter().all(|c| c[0] == b"HSET" && c[1] == b"h"));
        assert_eq!(
            hsets.iter().map(|c| (c.len() - 2) / 2).collect::<Vec<_>>(),
            [64, 64, 64, 64, 64, 64, 64, 64, 64, 24]
        );
        let written: Vec<(Vec<u8>, Vec<u8>)> = hsets
            .iter()
            .flat_map(|c| c[2..].chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect::<Vec<_>>())
            .collect();
        let walked: Vec<(Vec<u8>, Vec<u8>)> = hash.pairs().iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
        assert_eq!(written, walked);
        assert_eq!(rest[0], [&b"PEXPIREAT"[..], b"h", b"1700000000000"]);

        let sadds = &rest[1..];
        assert_eq!(sadds.iter().map(|c| c.len() - 2).collect::<Vec<_>>(), [64, 64, 2], "an intset, as text");
        let members: Vec<Vec<u8>> = sadds.iter().flat_map(|c| c[2..].to_vec()).collect();
        assert_eq!(members, set.members().iter().map(|m| m.to_vec()).collect::<Vec<_>>());
    }

    #[test]
    fn round_trips_binary_arguments_and_skips_annotations() {
        let mut out = b"#TS:1700000000\r\n".to_vec();
        encode(&mut out, &[b"SET", b"k\r\n\x00", b""]);
        encode(&mut out, &[b"DEL", b"k"]);
        let commands = read_all(&out).unwrap();
        assert_eq!(
            commands,
            vec![vec![b"SET".to_vec(), b"k\r\n\x00".to_vec(), Vec::new()], vec![b"DEL".to_vec(), b"k".to_vec()]]
        );
    }

    #[test]
    fn every_cut_of_the_last_command_is_a_truncation_at_its_start() {
        let mut out = Vec::new();
        encode(&mut out, &[b"SET", b"a", b"1"]);
        let second = out.len() as u64;
        encode(&mut out, &[b"SET", b"key", b"value"]);
        for cut in second as usize + 1..out.len() {
            match read_all(&out[..cut]) {
                Err(ReadError::Truncated { offset }) => assert_eq!(offset, second, "cut at {cut}"),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn garbage_is_corruption_not_truncation() {
        for bad in [
            &b"SET a 1\r\n"[..],
            b"*1\r\n+OK\r\n",
            b"*0\r\n",
            b"*1\r\n$1\r\nab\r\n",
            b"*1\n$1\na\n",
            b"*99999999999999999999999999999999999\r\n",
        ] {
            assert!(matches!(read_all(bad), Err(ReadError::Corrupt { .. })), "{:?}", bad.escape_ascii().to_string());
        }
    }
}
