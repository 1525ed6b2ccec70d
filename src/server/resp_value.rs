//! The client side of RESP: decoding the replies a server sends (every RESP2 and RESP3 type) and
//! encoding commands the way client libraries send them.
//!
//! The server itself never decodes replies; this is for integration tests that talk raw protocol
//! to a server (ours or a real `redis-server`), for the round-trip tests of [`reply`], and for
//! tools. The decoder is strict where the server side is lenient (every line must end in
//! `\r\n`), so that a test catches a malformed reply instead of reading past it.
//!
//! [`reply`]: super::reply

use bytes::{BufMut, Bytes, BytesMut};

use super::reply::{format_double, put_header};

/// Aggregates nested deeper than this are refused, so hostile input cannot exhaust the stack.
pub const MAX_DEPTH: usize = 128;

/// One RESP2 or RESP3 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `+text`
    Simple(Bytes),
    /// `-CODE message`
    Error(Bytes),
    /// `:n`
    Integer(i64),
    /// `$len` and the bytes
    Bulk(Bytes),
    /// `$-1`, RESP2's null
    NullBulk,
    /// `*len` and the elements
    Array(Vec<Value>),
    /// `*-1`, RESP2's null array
    NullArray,
    /// `_`, RESP3's null
    Null,
    /// `,` RESP3 double
    Double(f64),
    /// `#t` or `#f`
    Boolean(bool),
    /// `!len`, a RESP3 error as a blob
    BlobError(Bytes),
    /// `=len` and `fmt:text`: a RESP3 string with its three-character format
    Verbatim { format: Bytes, text: Bytes },
    /// `(digits`, a RESP3 integer of any size, as its decimal text
    BigNumber(Bytes),
    /// `%pairs` and the keys and values
    Map(Vec<(Value, Value)>),
    /// `~len` and the elements
    Set(Vec<Value>),
    /// `>len` and the elements, an out-of-band RESP3 message
    Push(Vec<Value>),
}

/// Why bytes are not a valid reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("unknown RESP type byte {0:#04x}")]
    UnknownType(u8),
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("aggregates nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// Decodes one reply from the front of `input`: `Ok(Some((value, bytes used)))`, or `Ok(None)`
/// when `input` ends before the reply does.
pub fn parse_value(input: &[u8]) -> Result<Option<(Value, usize)>, ValueError> {
    let mut reader = Reader { input, pos: 0 };
    match reader.value(0) {
        Ok(value) => Ok(Some((value, reader.pos))),
        Err(Stop::Incomplete) => Ok(None),
        Err(Stop::Invalid(error)) => Err(error),
    }
}

/// Appends a command as clients send it: an array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    put_header(out, b'*', args.len());
    for arg in args {
        put_blob(out, b'$', arg.as_ref());
    }
}

impl Value {
    /// Appends the value in its own wire form; `parse_value` reads it back equal (a NaN double
    /// aside, which is never equal to itself).
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Value::Simple(text) => put_line(out, b'+', text),
            Value::Error(text) => put_line(out, b'-', text),
            Value::Integer(n) => put_header(out, b':', *n),
            Value::Bulk(bytes) => put_blob(out, b'$', bytes),
            Value::NullBulk => out.extend_from_slice(b"$-1\r\n"),
            Value::Array(items) => put_aggregate(out, b'*', items),
            Value::NullArray => out.extend_from_slice(b"*-1\r\n"),
            Value::Null => out.extend_from_slice(b"_\r\n"),
            Value::Double(value) => put_line(out, b',', format_double(*value).as_bytes()),
            Value::Boolean(value) => out.extend_from_slice(if *value { b"#t\r\n" } else { b"#f\r\n" }),
            Value::BlobError(bytes) => put_blob(out, b'!', bytes),
            Value::Verbatim { format, text } => {
                put_header(out, b'=', format.len() + 1 + text.len());
                out.extend_from_slice(format);
                out.put_u8(b':');
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            }
            Value::BigNumber(digits) => put_line(out, b'(', digits),
            Value::Map(pairs) => {
                put_header(out, b'%', pairs.len());
                for (key, value) in pairs {
                    key.encode(out);
                    value.encode(out);
                }
            }
            Value::Set(items) => put_aggregate(out, b'~', items),
            Value::Push(items) => put_aggregate(out, b'>', items),
        }
    }
}

fn put_line(out: &mut BytesMut, prefix: u8, text: &[u8]) {
    out.put_u8(prefix);
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

fn put_blob(out: &mut BytesMut, prefix: u8, bytes: &[u8]) {
    put_header(out, prefix, bytes.len());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

fn put_aggregate(out: &mut BytesMut, prefix: u8, items: &[Value]) {
    put_header(out, prefix, items.len());
    items.iter().for_each(|item| item.encode(out));
}

/// Why decoding stopped early.
enum Stop {
    Incomplete,
    Invalid(ValueError),
}

impl From<ValueError> for Stop {
    fn from(error: ValueError) -> Self {
        Stop::Invalid(error)
    }
}

fn malformed(what: &'static str) -> Stop {
    Stop::Invalid(ValueError::Malformed(what))
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn value(&mut self, depth: usize) -> Result<Value, Stop> {
        if depth > MAX_DEPTH {
            return Err(ValueError::TooDeep.into());
        }
        let kind = *self.input.get(self.pos).ok_or(Stop::Incomplete)?;
        self.pos += 1;
        Ok(match kind {
            b'+' => Value::Simple(Bytes::copy_from_slice(self.line()?)),
            b'-' => Value::Error(Bytes::copy_from_slice(self.line()?)),
            b':' => Value::Integer(parse_text(self.line()?).ok_or_else(|| malformed("integer"))?),
            b'$' => match self.length()? {
                Some(len) => Value::Bulk(self.blob(len)?),
                None => Value::NullBulk,
            },
            b'*' => match self.length()? {
                Some(len) => Value::Array(self.values(len, depth)?),
                None => Value::NullArray,
            },
            b'_' if self.line()?.is_empty() => Value::Null,
            b'_' => return Err(malformed("null")),
            b',' => Value::Double(parse_text(self.line()?).ok_or_else(|| malformed("double"))?),
            b'#' => match self.line()? {
                b"t" => Value::Boolean(true),
                b"f" => Value::Boolean(false),
                _ => return Err(malformed("boolean")),
            },
            b'!' => {
                let len = self.required_length()?;
                Value::BlobError(self.blob(len)?)
            }
            b'=' => {
                let len = self.required_length()?;
                let payload = self.blob(len)?;
                match payload.get(3) {
                    Some(b':') => Value::Verbatim { format: payload.slice(..3), text: payload.slice(4..) },
                    _ => return Err(malformed("verbatim string")),
                }
            }
            b'(' => {
                let digits = self.line()?;
                let unsigned = digits.strip_prefix(b"-").unwrap_or(digits);
                if unsigned.is_empty() || !unsigned.iter().all(u8::is_ascii_digit) {
                    return Err(malformed("big number"));
                }
                Value::BigNumber(Bytes::copy_from_slice(digits))
            }
            b'%' => {
                let len = self.required_length()?;
                let mut pairs = Vec::with_capacity(self.capacity_for(len));
                for _ in 0..len {
                    pairs.push((self.value(depth + 1)?, self.value(depth + 1)?));
                }
                Value::Map(pairs)
            }
            b'~' => {
                let len = self.required_length()?;
                Value::Set(self.values(len, depth)?)
            }
            b'>' => {
                let len = self.required_length()?;
                Value::Push(self.values(len, depth)?)
            }
            other => return Err(ValueError::UnknownType(other).into()),
        })
    }

    /// The rest of the current line, which must end in `\r\n`.
    fn line(&mut self) -> Result<&'a [u8], Stop> {
        let rest = self.input.get(self.pos..).unwrap_or_default();
        let cr = memchr::memchr(b'\r', rest).ok_or(Stop::Incomplete)?;
        match rest.get(cr + 1) {
            None => Err(Stop::Incomplete),
            Some(b'\n') => {
                self.pos += cr + 2;
                Ok(rest.get(..cr).unwrap_or_default())
            }
            Some(_) => Err(malformed("line ending")),
        }
    }

    /// A length line: `None` for -1, RESP2's null.
    fn length(&mut self) -> Result<Option<usize>, Stop> {
        match parse_text::<i64>(self.line()?) {
            Some(-1) => Ok(None),
            Some(len) => usize::try_from(len).map(Some).map_err(|_| malformed("length")),
            None => Err(malformed("length")),
        }
    }

    /// A length line of a type that has no null form.
    fn required_length(&mut self) -> Result<usize, Stop> {
        self.length()?.ok_or_else(|| malformed("length"))
    }

    /// `len` bytes followed by `\r\n`.
    fn blob(&mut self, len: usize) -> Result<Bytes, Stop> {
        let end = self.pos.saturating_add(len);
        let bytes = self.input.get(self.pos..end).ok_or(Stop::Incomplete)?;
        match self.input.get(end..end.saturating_add(2)) {
            Some(b"\r\n") => {
                self.pos = end + 2;
                Ok(Bytes::copy_from_slice(bytes))
            }
            Some(_) => Err(malformed("blob ending")),
            None => Err(Stop::Incomplete),
        }
    }

    fn values(&mut self, len: usize, depth: usize) -> Result<Vec<Value>, Stop> {
        let mut items = Vec::with_capacity(self.capacity_for(len));
        for _ in 0..len {
            items.push(self.value(depth + 1)?);
        }
        Ok(items)
    }

    /// Capacity to reserve for `len` announced elements: no more than the unread input can hold
    /// (every element takes at least three bytes), so a lying header cannot make us allocate.
    fn capacity_for(&self, len: usize) -> usize {
        len.min(self.input.len().saturating_sub(self.pos) / 3)
    }
}

fn parse_text<T: std::str::FromStr>(text: &[u8]) -> Option<T> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests;
