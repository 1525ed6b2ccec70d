//! Reply encoding: RESP written straight into the connection's output buffer.
//!
//! A command writes its reply through a [`ReplyWriter`], which knows the protocol the client
//! negotiated with HELLO and picks the encoding: RESP3 has its own types for null, maps, sets,
//! doubles, booleans and verbatim strings, RESP2 falls back to the types Redis uses there.
//! Numbers are formatted on the stack and nothing is allocated per call; the output grows as it
//! needs to, up to the client's hard output limit, and large values join it by reference
//! ([`Output`]). The decoder for these replies, the client side, is
//! [`resp_value`](super::resp_value).

use std::fmt::{self, Write as _};

use bytes::{BufMut, BytesMut};

use super::output::{BY_REFERENCE_MIN, Output};
use crate::engine::CompactBytes;

/// The protocol version a client speaks: RESP2 until it sends `HELLO 3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Resp2,
    Resp3,
}

/// Writes replies into an output buffer in the client's protocol.
pub struct ReplyWriter<'a> {
    out: &'a mut Output,
    protocol: Protocol,
}

impl<'a> ReplyWriter<'a> {
    pub fn new(out: &'a mut Output, protocol: Protocol) -> Self {
        ReplyWriter { out, protocol }
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Bytes of output not yet sent, this reply's included.
    pub fn buffered(&self) -> usize {
        self.out.pending()
    }

    /// Counts `bytes` the command holds for the rest of its reply toward the client's output
    /// limit and memory ([`Output::hold`]); false once the output overflowed.
    pub(crate) fn hold(&mut self, bytes: usize) -> bool {
        self.out.hold(bytes)
    }

    /// Whether the client's output passed its limit: the client is being disconnected, and
    /// nothing more written to it will be sent.
    pub(crate) fn overflowed(&self) -> bool {
        self.out.overflowed()
    }

    /// Switches protocol for the replies that follow, as HELLO does in the middle of a pipeline.
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.out.extend(b"+OK\r\n");
    }

    /// A simple string; CR and LF in `text` become spaces so the reply stays one line.
    pub fn simple(&mut self, text: &str) {
        self.line(b'+', text.as_bytes());
    }

    /// An error reply; `text` starts with the error code (`"ERR syntax error"`). CR and LF in it
    /// become spaces, as Redis does, so the reply stays one line.
    pub fn error(&mut self, text: &str) {
        self.line(b'-', text.as_bytes());
    }

    pub fn integer(&mut self, n: i64) {
        header(self.out, b':', n);
    }

    /// A bulk string.
    pub fn bulk(&mut self, bytes: &[u8]) {
        header(self.out, b'$', bytes.len());
        self.out.extend(bytes);
        self.out.extend(b"\r\n");
    }

    /// A stored value as a bulk string: a large one by reference, so that it is never copied
    /// and a reply naming it many times costs a reference each.
    pub fn value(&mut self, value: &CompactBytes) {
        if value.len() < BY_REFERENCE_MIN {
            return self.bulk(value);
        }
        header(self.out, b'$', value.len());
        self.out.push_value(value);
        self.out.extend(b"\r\n");
    }

    /// The null reply for a missing value: `$-1` in RESP2, `_` in RESP3.
    pub fn null(&mut self) {
        self.out.extend(match self.protocol {
            Protocol::Resp2 => b"$-1\r\n",
            Protocol::Resp3 => b"_\r\n",
        });
    }

    /// The null reply for a missing array: `*-1` in RESP2, `_` in RESP3.
    pub fn null_array(&mut self) {
        self.out.extend(match self.protocol {
            Protocol::Resp2 => b"*-1\r\n",
            Protocol::Resp3 => b"_\r\n",
        });
    }

    /// The header of an array of `len` replies, which the caller writes next.
    pub fn array(&mut self, len: usize) {
        header(self.out, b'*', len);
    }

    /// The header of a map of `pairs` key-value pairs, which the caller writes next, key first.
    /// RESP2 has no maps: it becomes an array of `2 * pairs` replies, as in Redis.
    pub fn map(&mut self, pairs: usize) {
        match self.protocol {
            // Widened so that doubling cannot overflow.
            Protocol::Resp2 => header(self.out, b'*', pairs as u128 * 2),
            Protocol::Resp3 => header(self.out, b'%', pairs),
        }
    }

    /// The header of a set of `len` replies, which the caller writes next; an array in RESP2.
    pub fn set(&mut self, len: usize) {
        let prefix = match self.protocol {
            Protocol::Resp2 => b'*',
            Protocol::Resp3 => b'~',
        };
        header(self.out, prefix, len);
    }

    /// A double, formatted as Redis 7.2+ formats it (see [`format_double`]); a bulk string in
    /// RESP2.
    pub fn double(&mut self, value: f64) {
        let text = format_double(value);
        match self.protocol {
            Protocol::Resp2 => self.bulk(text.as_bytes()),
            Protocol::Resp3 => {
                self.out.put_u8(b',');
                self.out.extend(text.as_bytes());
                self.out.extend(b"\r\n");
            }
        }
    }

    /// A boolean; the integer 1 or 0 in RESP2.
    pub fn boolean(&mut self, value: bool) {
        match self.protocol {
            Protocol::Resp2 => self.integer(i64::from(value)),
            Protocol::Resp3 => self.out.extend(if value { b"#t\r\n" } else { b"#f\r\n" }),
        }
    }

    /// A verbatim string: `text` with its `format`, which RESP3 requires to be three characters
    /// (`"txt"`, `"mkd"`). RESP2 gets `text` alone as a bulk string.
    pub fn verbatim(&mut self, format: &str, text: &[u8]) {
        match self.protocol {
            Protocol::Resp2 => self.bulk(text),
            Protocol::Resp3 => {
                header(self.out, b'=', format.len() + 1 + text.len());
                self.out.extend(format.as_bytes());
                self.out.put_u8(b':');
                self.out.extend(text);
                self.out.extend(b"\r\n");
            }
        }
    }

    /// A `prefix`ed line of `text`, with CR and LF replaced so it cannot end early and leave the
    /// client reading the rest as another reply.
    fn line(&mut self, prefix: u8, text: &[u8]) {
        self.out.put_u8(prefix);
        match memchr::memchr2(b'\r', b'\n', text) {
            None => self.out.extend(text),
            Some(_) => self.out.extend_exact(
                text.len(),
                text.iter().map(|&byte| if matches!(byte, b'\r' | b'\n') { b' ' } else { byte }),
            ),
        }
        self.out.extend(b"\r\n");
    }
}

/// Writes `<prefix><number>\r\n`, the header of most RESP types.
pub(crate) fn put_header(out: &mut BytesMut, prefix: u8, number: impl itoa::Integer) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(number).as_bytes();
    out.reserve(digits.len() + 3);
    out.put_u8(prefix);
    out.extend_from_slice(digits);
    out.extend_from_slice(b"\r\n");
}

/// [`put_header`] into a client's output, in one append so the hard limit sees the whole line.
fn header(out: &mut Output, prefix: u8, number: impl itoa::Integer) {
    // The longest number itoa writes, a negative 128-bit one, has 40 characters.
    let mut line = [0u8; 48];
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(number).as_bytes();
    let len = digits.len() + 3;
    line[0] = prefix;
    line[1..=digits.len()].copy_from_slice(digits);
    line[len - 2..len].copy_from_slice(b"\r\n");
    out.extend(&line[..len]);
}

/// Formats a double as Redis 7.2+ does (`d2string` in util.c): `nan`, `inf`, `-inf`, `0`, `-0`;
/// integral values within ±2^62 as integers; anything else as the shortest digits that read back
/// as the same double, laid out by the rules of Redis's `fpconv_dtoa`: plainly when the exponent
/// is moderate (`0.1`, `123.25`, `0.0001`, `1234567800000000000`), else as `1.5e-7` or `1e+300`.
///
/// Redis 7.0 printed `%.17g` instead (`0.10000000000000001`); Redis's grisu2 digits can, in rare
/// cases, be one digit longer than the shortest that Rust computes.
pub(crate) fn format_double(value: f64) -> DoubleText {
    /// Redis prints integral doubles in this range with its integer formatter.
    const INTEGER_RANGE: f64 = 4_611_686_018_427_387_904.0; // 2^62, Redis's LLONG_MAX / 2
    let mut text = DoubleText::default();
    if value.is_nan() {
        text.extend(b"nan");
    } else if value.is_infinite() {
        text.extend(if value > 0.0 { b"inf" } else { b"-inf" });
    } else if value == 0.0 {
        text.extend(if value.is_sign_negative() { b"-0" } else { b"0" });
    } else if value.fract() == 0.0 && value.abs() <= INTEGER_RANGE {
        // In range and integral, so the conversion is exact.
        text.extend(itoa::Buffer::new().format(value as i64).as_bytes());
    } else {
        if value < 0.0 {
            text.push(b'-');
        }
        lay_out_digits(&mut text, value.abs());
    }
    text
}

/// Appends finite, nonzero, positive `value` in fpconv's layout.
fn lay_out_digits(text: &mut DoubleText, value: f64) {
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e-7", "1e300".
    let mut scientific = DoubleText::default();
    let _ = write!(scientific, "{value:e}");
    let mut parts = scientific.as_bytes().split(|&byte| byte == b'e');
    let mantissa = parts.next().unwrap_or_default();
    let exponent_text = parts.next().unwrap_or_default();
    let mut digits = DoubleText::default();
    mantissa.iter().filter(|byte| byte.is_ascii_digit()).for_each(|&digit| digits.push(digit));
    let digits = digits.as_bytes();
    let magnitude =
        exponent_text.iter().filter(|byte| byte.is_ascii_digit()).fold(0i32, |n, &d| n * 10 + i32::from(d - b'0'));
    // The power of ten of the first digit, and of the last one.
    let first = if exponent_text.starts_with(b"-") { -magnitude } else { magnitude };
    let count = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let last = first - (count - 1);
    if last >= 0 && first.abs() < count + 7 {
        text.extend(digits);
        (0..last).for_each(|_| text.push(b'0'));
    } else if last < 0 && (last > -7 || first.abs() < 4) {
        if first < 0 {
            text.extend(b"0.");
            (0..-first - 1).for_each(|_| text.push(b'0'));
            text.extend(digits);
        } else {
            let (integer, fraction) = digits.split_at_checked(first as usize + 1).unwrap_or((digits, &[]));
            text.extend(integer);
            text.push(b'.');
            text.extend(fraction);
        }
    } else {
        let (lead, rest) = digits.split_first().unwrap_or((&b'0', &[]));
        text.push(*lead);
        if !rest.is_empty() {
            text.push(b'.');
            text.extend(rest);
        }
        text.push(b'e');
        text.push(if first < 0 { b'-' } else { b'+' });
        text.extend(itoa::Buffer::new().format(first.unsigned_abs()).as_bytes());
    }
}

/// A formatted double, on the stack. The longest text a double can produce here is 25 bytes;
/// past the capacity bytes would be dropped rather than panic.
#[derive(Default)]
pub(crate) struct DoubleText {
    bytes: [u8; 32],
    len: usize,
}

impl DoubleText {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&byte| self.push(byte));
    }
}

impl fmt::Write for DoubleText {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.extend(text.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
