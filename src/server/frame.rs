//! Request decoding: the bytes a client sends, cut into complete requests and their arguments.
//!
//! A request is either a multibulk array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, what
//! every client library sends) or an inline line (`PING\r\n`, what a person types into telnet).
//! Decoding runs in two steps, as in mini-redis: a cheap completeness check walks the headers and
//! jumps over bulk payloads by their announced length without allocating, noting where each
//! payload is; once the whole request is buffered, its arguments are borrowed straight from the
//! read buffer ([`RequestDecoder::args`]) and the request is dropped from the buffer after it
//! has been executed. (Inline arguments with quotes or escapes are decoded into their own small
//! buffers.) Nothing is copied or reference-counted per request: an argument lives only as long
//! as its request is executed, and whatever outlives the request is copied by whoever keeps it
//! (the engine copies every key and value it stores, `CLIENT SETNAME` its name).
//!
//! # What is accepted
//! Redis 7 (`processMultibulkBuffer`, `processInlineBuffer`, `sdssplitargs` in networking.c and
//! sds.c) is the reference, including its quirks, checked against a real `redis-server`:
//! - numbers in headers are read like `string2ll`: an optional `-`, no `+`, no leading zeros;
//! - a header line ends at its first `\r`; the byte after it is required but never looked at,
//!   and neither are the two bytes after a bulk payload;
//! - `*0`, `*-1` (any count below one) and inline lines without arguments are skipped;
//! - an inline line ends at `\n`, with one `\r` before it dropped; arguments are split on
//!   blanks, with `"..."` (escapes `\n \r \t \b \a \\ \" \xHH`) and `'...'` (escape `\'`);
//!   a closing quote must be followed by a blank or the end of the line;
//! - a NUL byte before the end of a header or inline line means the line never ends, because
//!   Redis looks for the end with `strchr`; the request then fails as "too big" once more than
//!   `max_inline_len` bytes of the line are buffered, as in Redis.
//!
//! Where Redis's answer depends on how the bytes were chunked into reads, this decoder picks the
//! chunked answer, so that a request gives the same result however it arrives:
//! - an inline line longer than `max_inline_len` is refused even when its newline arrived in
//!   the same read (Redis refuses only when it has buffered that much without a newline);
//! - a header line whose `\r` comes after `max_inline_len` bytes is "too big ... count string",
//!   where Redis says "invalid ... length" if the whole line came in one read.
//!
//! Other differences from Redis 7:
//! - `max_args` defaults to 1024 * 1024 (Redis 6's limit; Redis 7 accepts up to `i32::MAX`);
//! - a request over `max_request_len` gets an error reply, where Redis, whose
//!   `client-query-buffer-limit` counts all buffered bytes, closes the connection silently;
//! - in "expected '$', got 'X'" a byte above 0x7f is sent as UTF-8 (see
//!   [`ProtocolError::ExpectedBulk`]);
//! - before AUTH (with [`Limits::unauthenticated`]), a multibulk request of more than 10
//!   arguments or with a bulk over 16 KiB is refused as in Redis, but an inline line is bounded
//!   only by `max_inline_len`, as in Redis.
//!
//! # Bounded memory
//! Nothing is reserved from an announced length: a bulk header longer than `max_bulk_len` or a
//! count above `max_args` fails as soon as its line is complete, and the decoder looks at no byte
//! past the first `max_request_len`, so [`parse_request`] (or [`RequestDecoder::decode`]) fails
//! with [`ProtocolError::RequestTooBig`] instead of returning `Ok(None)` once the buffered part of
//! an incomplete request exceeds `max_request_len`, or as soon as a bulk header announces more
//! than that. A connection therefore needs no separate size check: read into its buffer, call
//! `decode` until it returns `Ok(None)`, and read again. Every `Ok(None)` guarantees the buffer
//! holds at most `max_request_len` bytes, so the buffer never exceeds that plus one read. On an
//! error, reply `-ERR <error>` and close the connection, as Redis does; the buffer's contents are
//! then unspecified.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

/// Limits on what one client request may be; all configurable by the server config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string argument, in bytes (Redis `proto-max-bulk-len`).
    pub max_bulk_len: usize,
    /// Most arguments in one multibulk request.
    pub max_args: usize,
    /// Longest inline request line and longest header line (Redis `PROTO_INLINE_MAX_SIZE`).
    pub max_inline_len: usize,
    /// Largest request, in bytes as sent (in the role of Redis `client-query-buffer-limit`).
    pub max_request_len: usize,
    /// The client has yet to authenticate while a password is required: Redis then allows at
    /// most [`UNAUTHENTICATED_MAX_ARGS`] arguments and bulks of [`UNAUTHENTICATED_MAX_BULK`]
    /// bytes, so a stranger cannot make the server buffer `max_request_len` per connection.
    pub unauthenticated: bool,
}

/// Most arguments of one request before AUTH, as in Redis (`processMultibulkBuffer`).
pub const UNAUTHENTICATED_MAX_ARGS: usize = 10;
/// Longest bulk before AUTH, as in Redis.
pub const UNAUTHENTICATED_MAX_BULK: usize = 16 * 1024;

impl Default for Limits {
    /// Redis's defaults, except `max_args`: Redis 7 allows up to `i32::MAX` arguments, Redis 6
    /// allowed 1024 * 1024, which is plenty and keeps one request's argument vector small.
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline_len: 64 * 1024,
            max_request_len: 1024 * 1024 * 1024,
            unauthenticated: false,
        }
    }
}

/// Why a client's bytes are not a valid request. `Display` is Redis's text without the `ERR `
/// prefix; the connection replies `-ERR <text>` and closes, as Redis does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The `*` line is not a number, or counts more than `max_args` arguments.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// A `$` line is not a number, is negative, or is longer than `max_bulk_len`.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// An argument of a multibulk request does not start with `$`. Redis echoes the raw byte;
    /// a byte above 0x7f is shown here as the Latin-1 character of that value.
    #[error("Protocol error: expected '$', got '{}'", char::from(*.found))]
    ExpectedBulk {
        /// The first byte of the line where a `$` header was expected.
        found: u8,
    },
    /// More than [`UNAUTHENTICATED_MAX_ARGS`] arguments before AUTH.
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// A bulk longer than [`UNAUTHENTICATED_MAX_BULK`] before AUTH.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// An inline line longer than `max_inline_len`.
    #[error("Protocol error: too big inline request")]
    InlineTooBig,
    /// A `*` line longer than `max_inline_len`.
    #[error("Protocol error: too big mbulk count string")]
    MultibulkCountTooBig,
    /// A `$` line longer than `max_inline_len`.
    #[error("Protocol error: too big bulk count string")]
    BulkCountTooBig,
    /// An inline line with an unterminated quote, or a closing quote followed by a non-blank.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A request longer than `max_request_len` bytes.
    #[error("Protocol error: too big request (max_request_len is {limit} bytes)")]
    RequestTooBig {
        /// The `max_request_len` in force.
        limit: usize,
    },
}

/// Decodes one complete request from the front of `buf` and removes its bytes; `Ok(None)` when
/// more bytes are needed. `Ok(None)` consumes nothing of the incomplete request; requests without
/// arguments in front of it (blank lines, `*0`), which Redis skips, are dropped. Never returns an
/// empty argument list.
///
/// This is a fresh [`RequestDecoder`] per call: a connection should keep one decoder instead, so
/// that a large request arriving over many reads is checked once rather than once per read.
pub fn parse_request(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    RequestDecoder::default().decode(buf, limits)
}

/// A request decoder that remembers how far it has checked an incomplete multibulk request, so
/// that each read costs time in proportion to the new bytes, not to the whole request so far.
///
/// Between calls the caller may only append to the buffer, since the remembered position refers
/// to its front; a buffer that was replaced needs a new decoder.
#[derive(Debug, Default)]
pub struct RequestDecoder {
    progress: Option<MultibulkProgress>,
    /// Where the payloads of the multibulk request being checked are, relative to the front
    /// of the buffer: collected by the completeness check itself, so a complete request is
    /// walked once, and kept across reads along with `progress`.
    payloads: Vec<Range<usize>>,
    /// The arguments of a complete inline request (empty for a multibulk one).
    inline: Vec<InlineArg>,
}

/// A decoder keeps the payload list of a request with this many arguments or fewer between
/// requests; a longer one is freed, so one huge request does not pin its list for good.
const KEPT_PAYLOAD_CAPACITY: usize = 1024;

impl RequestDecoder {
    /// Creates a decoder with nothing checked yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Same contract as [`parse_request`]: the arguments are copied out of `buf`. A server
    /// borrows them instead, with [`RequestDecoder::decode_front`] and [`RequestDecoder::args`].
    pub fn decode(&mut self, buf: &mut BytesMut, limits: &Limits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let Some(len) = self.decode_front(buf, limits)? else { return Ok(None) };
        let args = self.args(&buf[..len]).map(Bytes::copy_from_slice).collect();
        buf.advance(len);
        Ok(Some(args))
    }

    /// Finds the complete request at the front of `buf` and returns its length, leaving it in
    /// the buffer: read its arguments with [`RequestDecoder::args`], then advance `buf` by
    /// that length before the next call. `Ok(None)` means more bytes are needed. Requests
    /// without arguments in front of it (blank lines, `*0`), which Redis skips, are dropped.
    pub fn decode_front(&mut self, buf: &mut BytesMut, limits: &Limits) -> Result<Option<usize>, ProtocolError> {
        if self.progress.is_none() {
            // The previous request is done with (or this is the first): forget its arguments.
            self.inline.clear();
            self.payloads.clear();
            if self.payloads.capacity() > KEPT_PAYLOAD_CAPACITY {
                self.payloads = Vec::new();
            }
        }
        loop {
            let buffered: &[u8] = buf;
            // Nothing past the limit is looked at, so whether an oversized request is refused, and
            // with which error, does not depend on how its bytes were chunked into reads.
            let window = buffered.get(..limits.max_request_len).unwrap_or(buffered);
            match self.check_front(window, limits)? {
                Front::Pending if buf.len() > limits.max_request_len => {
                    return Err(ProtocolError::RequestTooBig { limit: limits.max_request_len });
                }
                Front::Pending => return Ok(None),
                Front::Empty { len } => buf.advance(len),
                Front::Multibulk { len } => return Ok(Some(len)),
                Front::Inline { len, args } => {
                    // A partial multibulk request checked earlier is not at the front any
                    // more (the buffer was replaced): its payloads must not join these.
                    self.progress = None;
                    self.payloads.clear();
                    self.inline = args;
                    return Ok(Some(len));
                }
            }
        }
    }

    /// The arguments of the request [`RequestDecoder::decode_front`] found, borrowed from
    /// `request`: the front of the buffer, as long as the length it returned.
    pub fn args<'a>(&'a self, request: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        // A request is either multibulk or inline, so one of the two lists is empty.
        let payloads = self.payloads.iter().map(|payload| request.get(payload.clone()).unwrap_or_default());
        payloads.chain(self.inline.iter().map(|arg| arg.as_slice(request)))
    }

    /// The completeness check: what the request at the front of `window` is, if it is all there.
    fn check_front(&mut self, window: &[u8], limits: &Limits) -> Result<Front, ProtocolError> {
        match window.first() {
            None => Ok(Front::Pending),
            Some(b'*') => self.check_multibulk(window, limits),
            Some(_) => check_inline(window, limits),
        }
    }

    fn check_multibulk(&mut self, window: &[u8], limits: &Limits) -> Result<Front, ProtocolError> {
        // A remembered position past the end means the caller did not just append: start over.
        let progress = match self.progress.take().filter(|progress| progress.cursor.next <= window.len()) {
            Some(progress) => progress,
            None => {
                self.payloads.clear();
                match read_count_line(window, limits)? {
                    CountLine::Pending => return Ok(Front::Pending),
                    CountLine::Empty { len } => return Ok(Front::Empty { len }),
                    CountLine::Args { first_arg, args } => {
                        MultibulkProgress { cursor: BulkCursor { next: first_arg, remaining: args } }
                    }
                }
            }
        };
        let payloads = &mut self.payloads;
        match walk_bulks(window, progress.cursor, limits, |payload| payloads.push(payload))? {
            Walk::Pending(cursor) => {
                self.progress = Some(MultibulkProgress { cursor });
                Ok(Front::Pending)
            }
            Walk::Complete { end } => Ok(Front::Multibulk { len: end }),
        }
    }
}

/// What the completeness check found at the front of the buffer.
enum Front {
    /// The request is not all there yet.
    Pending,
    /// A complete request without arguments, skipped as Redis skips it.
    Empty { len: usize },
    /// A complete multibulk request of `len` bytes; the decoder holds its payload ranges.
    Multibulk { len: usize },
    /// A complete inline request of `len` bytes, already split into arguments.
    Inline { len: usize, args: Vec<InlineArg> },
}

/// How far the completeness check got into an incomplete multibulk request.
#[derive(Clone, Copy, Debug)]
struct MultibulkProgress {
    cursor: BulkCursor,
}

/// The next `$` header to read and how many arguments, from that one on, are still to come.
#[derive(Clone, Copy, Debug)]
struct BulkCursor {
    next: usize,
    remaining: usize,
}

enum CountLine {
    Pending,
    Empty { len: usize },
    Args { first_arg: usize, args: usize },
}

/// Reads the `*<count>` line at the start of `bytes`.
fn read_count_line(bytes: &[u8], limits: &Limits) -> Result<CountLine, ProtocolError> {
    let cr = match find_line_end(bytes, 0, b'\r', limits.max_inline_len) {
        LineEnd::At(cr) => cr,
        LineEnd::Pending => return Ok(CountLine::Pending),
        LineEnd::TooLong => return Err(ProtocolError::MultibulkCountTooBig),
    };
    // Like Redis, wait for the byte after '\r' but do not check that it is '\n'.
    let first_arg = cr + 2;
    if bytes.len() < first_arg {
        return Ok(CountLine::Pending);
    }
    let count = bytes.get(1..cr).and_then(parse_header_number).ok_or(ProtocolError::InvalidMultibulkLength)?;
    match usize::try_from(count) {
        // Zero and negative counts are requests without arguments.
        Err(_) | Ok(0) => Ok(CountLine::Empty { len: first_arg }),
        Ok(args) if args > limits.max_args => Err(ProtocolError::InvalidMultibulkLength),
        Ok(args) if limits.unauthenticated && args > UNAUTHENTICATED_MAX_ARGS => {
            Err(ProtocolError::UnauthenticatedMultibulkLength)
        }
        Ok(args) => Ok(CountLine::Args { first_arg, args }),
    }
}

enum Walk {
    /// More bytes are needed; the walk resumes at the cursor.
    Pending(BulkCursor),
    /// All arguments are there; the request ends at `end`.
    Complete { end: usize },
}

/// Walks `$<len>\r\n<payload>\r\n` arguments from `cursor` on, handing each payload's range to
/// `on_arg` (the completeness check collects them, so the split needs no second walk).
fn walk_bulks(
    bytes: &[u8],
    mut cursor: BulkCursor,
    limits: &Limits,
    mut on_arg: impl FnMut(Range<usize>),
) -> Result<Walk, ProtocolError> {
    while cursor.remaining > 0 {
        let cr = match find_line_end(bytes, cursor.next, b'\r', limits.max_inline_len) {
            LineEnd::At(cr) => cr,
            LineEnd::Pending => return Ok(Walk::Pending(cursor)),
            LineEnd::TooLong => return Err(ProtocolError::BulkCountTooBig),
        };
        let payload_start = cr + 2;
        if bytes.len() < payload_start {
            return Ok(Walk::Pending(cursor));
        }
        let len_text = match bytes.get(cursor.next..cr).unwrap_or_default().split_first() {
            Some((b'$', len_text)) => len_text,
            Some((&found, _)) => return Err(ProtocolError::ExpectedBulk { found }),
            // The line is empty: its first byte is the '\r' itself.
            None => return Err(ProtocolError::ExpectedBulk { found: b'\r' }),
        };
        let len = parse_header_number(len_text)
            .and_then(|len| usize::try_from(len).ok())
            .filter(|&len| len <= limits.max_bulk_len)
            .ok_or(ProtocolError::InvalidBulkLength)?;
        if limits.unauthenticated && len > UNAUTHENTICATED_MAX_BULK {
            return Err(ProtocolError::UnauthenticatedBulkLength);
        }
        let payload_end = payload_start.saturating_add(len);
        let arg_end = payload_end.saturating_add(2);
        // Refuse now rather than after buffering bytes that could never make a valid request.
        if arg_end > limits.max_request_len {
            return Err(ProtocolError::RequestTooBig { limit: limits.max_request_len });
        }
        if arg_end > bytes.len() {
            return Ok(Walk::Pending(cursor));
        }
        on_arg(payload_start..payload_end);
        cursor = BulkCursor { next: arg_end, remaining: cursor.remaining - 1 };
    }
    Ok(Walk::Complete { end: cursor.next })
}

/// Where a line starting at some offset ends.
enum LineEnd {
    /// At this index (of the terminator).
    At(usize),
    /// Not buffered yet.
    Pending,
    /// Not within the allowed length.
    TooLong,
}

/// How many bytes of a line [`find_line_end`] scans byte by byte before handing over to memchr.
const SHORT_LINE: usize = 16;

/// Finds `terminator` in the line starting at `start`, looking at most `max_len` bytes past
/// `start`. Like Redis's `strchr`, the search stops at a NUL byte: such a line never ends and is
/// refused once more than `max_len` bytes of it are buffered, exactly when Redis refuses it.
fn find_line_end(bytes: &[u8], start: usize, terminator: u8, max_len: usize) -> LineEnd {
    let pending = bytes.get(start..).unwrap_or_default();
    let searched = pending.get(..max_len.saturating_add(1)).unwrap_or(pending);
    // Header lines (`$64\r`) are a few bytes long: a plain loop finds their end before
    // memchr's vector setup would have started. Longer lines go to memchr.
    let (head, tail) = searched.split_at(searched.len().min(SHORT_LINE));
    let found = match head.iter().position(|&byte| byte == terminator || byte == 0) {
        Some(offset) => Some(offset),
        None => memchr::memchr2(terminator, 0, tail).map(|offset| head.len() + offset),
    };
    match found {
        Some(offset) if searched.get(offset) == Some(&terminator) => LineEnd::At(start + offset),
        _ if pending.len() > max_len => LineEnd::TooLong,
        _ => LineEnd::Pending,
    }
}

/// Parses a header number as Redis's `string2ll` does: an optional `-`, then `0` alone or digits
/// without a leading zero, fitting an `i64`.
fn parse_header_number(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', digits @ ..] => (true, digits),
        _ => (false, text),
    };
    match digits {
        [b'0'] if !negative => return Some(0),
        [b'1'..=b'9', ..] => {}
        _ => return None,
    }
    let magnitude = digits.iter().try_fold(0u64, |value, &digit| {
        if digit.is_ascii_digit() { value.checked_mul(10)?.checked_add(u64::from(digit - b'0')) } else { None }
    })?;
    if negative { 0i64.checked_sub_unsigned(magnitude) } else { i64::try_from(magnitude).ok() }
}

/// Checks an inline request: one line, split into arguments.
fn check_inline(window: &[u8], limits: &Limits) -> Result<Front, ProtocolError> {
    let newline = match find_line_end(window, 0, b'\n', limits.max_inline_len) {
        LineEnd::At(newline) => newline,
        LineEnd::Pending => return Ok(Front::Pending),
        LineEnd::TooLong => return Err(ProtocolError::InlineTooBig),
    };
    let line = window.get(..newline).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let args = split_inline(line)?;
    let len = newline + 1;
    Ok(if args.is_empty() { Front::Empty { len } } else { Front::Inline { len, args } })
}

/// One inline argument: a range of the line while its bytes appear there verbatim and
/// contiguously, its decoded bytes once quotes or escapes make it differ.
#[derive(Debug)]
enum InlineArg {
    Verbatim(Range<usize>),
    Decoded(Vec<u8>),
}

impl InlineArg {
    /// Appends `line[index]` as it is.
    fn push_verbatim(&mut self, line: &[u8], index: usize) {
        match self {
            InlineArg::Verbatim(range) if range.start == range.end => *range = index..index + 1,
            InlineArg::Verbatim(range) if range.end == index => range.end += 1,
            _ => {
                if let Some(&byte) = line.get(index) {
                    self.push_decoded(line, byte);
                }
            }
        }
    }

    /// Appends a byte that is not at its place in the line.
    fn push_decoded(&mut self, line: &[u8], byte: u8) {
        match self {
            InlineArg::Decoded(bytes) => bytes.push(byte),
            InlineArg::Verbatim(range) => {
                let mut bytes = line.get(range.clone()).unwrap_or_default().to_vec();
                bytes.push(byte);
                *self = InlineArg::Decoded(bytes);
            }
        }
    }

    /// The argument's bytes; `request` starts with the line the ranges refer to.
    fn as_slice<'a>(&'a self, request: &'a [u8]) -> &'a [u8] {
        match self {
            InlineArg::Verbatim(range) => request.get(range.clone()).unwrap_or_default(),
            InlineArg::Decoded(bytes) => bytes,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    Double,
    Single,
}

/// Splits an inline line into arguments as Redis's `sdssplitargs` does. The line holds no `\n`
/// and no NUL (see [`find_line_end`]).
fn split_inline(line: &[u8]) -> Result<Vec<InlineArg>, ProtocolError> {
    let mut args = Vec::new();
    let mut pos = 0;
    loop {
        pos += line.get(pos..).unwrap_or_default().iter().take_while(|&&byte| is_c_space(byte)).count();
        if pos >= line.len() {
            return Ok(args);
        }
        let (arg, end) = read_inline_arg(line, pos)?;
        args.push(arg);
        pos = end;
    }
}

/// Reads the argument starting at `start` (not a blank); returns it and where it ended.
fn read_inline_arg(line: &[u8], start: usize) -> Result<(InlineArg, usize), ProtocolError> {
    let mut arg = InlineArg::Verbatim(start..start);
    let mut quote = None;
    let mut pos = start;
    loop {
        let Some(&byte) = line.get(pos) else {
            return if quote.is_none() { Ok((arg, pos)) } else { Err(ProtocolError::UnbalancedQuotes) };
        };
        match (quote, byte) {
            // Unlike the blanks skipped between arguments, '\v' and '\f' do not end an argument.
            (None, b' ' | b'\n' | b'\r' | b'\t') => return Ok((arg, pos)),
            (None, b'"') => quote = Some(Quote::Double),
            (None, b'\'') => quote = Some(Quote::Single),
            (Some(Quote::Double), b'\\') => pos += push_escape(&mut arg, line, pos),
            (Some(Quote::Single), b'\\') if line.get(pos + 1) == Some(&b'\'') => {
                arg.push_decoded(line, b'\'');
                pos += 1;
            }
            (Some(Quote::Double), b'"') | (Some(Quote::Single), b'\'') => {
                // A closing quote must end the argument.
                if line.get(pos + 1).is_some_and(|&next| !is_c_space(next)) {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                return Ok((arg, pos + 1));
            }
            _ => arg.push_verbatim(line, pos),
        }
        pos += 1;
    }
}

/// Decodes the escape whose backslash is at `line[pos]`, inside double quotes, and returns how
/// many bytes after the backslash it used.
fn push_escape(arg: &mut InlineArg, line: &[u8], pos: usize) -> usize {
    let hex_value = line.get(pos + 2..pos + 4).and_then(|pair| match pair {
        [high, low] => Some(hex_digit(*high)? * 16 + hex_digit(*low)?),
        _ => None,
    });
    match (line.get(pos + 1), hex_value) {
        (Some(b'x'), Some(value)) => {
            arg.push_decoded(line, value);
            3
        }
        (Some(&escaped), _) => {
            let value = match escaped {
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'b' => 0x08,
                b'a' => 0x07,
                // "\\", "\"", and any other character stand for themselves ("\xZZ" is "xZZ").
                other => other,
            };
            arg.push_decoded(line, value);
            1
        }
        // A backslash ending the line is kept; the missing closing quote is the error.
        (None, _) => {
            arg.push_verbatim(line, pos);
            0
        }
    }
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// C's `isspace` in the C locale, which Redis uses between inline arguments.
fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

#[cfg(test)]
mod tests;
