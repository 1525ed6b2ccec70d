//! A client's pending output: replies not yet written to its socket.
//!
//! Small replies are encoded into one growing buffer; a large value is queued by reference
//! (values are reference-counted [`CompactBytes`]), so a reply that names a 1 MiB value 5,000
//! times holds 5,000 references rather than 5 GB of copies. The socket is written with vectored
//! writes straight from the queue.
//!
//! The hard `client-output-buffer-limit` is enforced here, as Redis enforces it when a reply is
//! added: the write that would make the pending output reach the limit discards everything and
//! marks the output overflowed, and every later write is dropped (Redis's `CLIENT_CLOSE_ASAP`),
//! so a reply that cannot fit never finishes growing. The connection then closes the client.
//! What a command holds for a reply it has yet to encode (KEYS's list of keys, which must be
//! complete before the reply's first byte gives its length) counts toward the limit too.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::engine::CompactBytes;

/// Values longer than this are queued by reference instead of copied: below it a copy costs
/// less than a queue entry and an extra slice per write.
pub(crate) const BY_REFERENCE_MIN: usize = 16 * 1024;

/// Slices handed to one vectored write: Linux accepts up to 1024, and 64 covers a pipeline of
/// large values at a fraction of the setup cost.
const WRITE_SLICES: usize = 64;

enum Chunk {
    Owned(Bytes),
    Value(CompactBytes),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(bytes) => bytes,
            Chunk::Value(value) => value,
        }
    }
}

/// Replies waiting for the socket, in order.
#[derive(Default)]
pub struct Output {
    /// Where replies are encoded; moved to `queue` when a value is queued after them or when
    /// the socket is written.
    tail: BytesMut,
    queue: VecDeque<Chunk>,
    /// Unwritten bytes in `queue`.
    queued: usize,
    /// How much of the front chunk has been written.
    front_written: usize,
    /// Memory a command holds for the rest of its reply ([`Output::hold`]).
    held: usize,
    /// The hard limit in bytes; 0 means none.
    hard_limit: usize,
    overflowed: bool,
}

impl Output {
    /// An output whose pending bytes may not reach `hard_limit` (0: unlimited).
    pub fn with_hard_limit(hard_limit: usize) -> Self {
        Output { hard_limit, ..Output::default() }
    }

    /// Changes the hard limit for the replies that follow (CONFIG SET takes effect per command).
    pub(crate) fn set_hard_limit(&mut self, hard_limit: usize) {
        self.hard_limit = hard_limit;
    }

    /// Bytes the client has yet to receive: what `omem` shows and the limits apply to. A value
    /// queued by reference counts in full: it may be the last reference to a deleted value.
    pub fn pending(&self) -> usize {
        self.queued + self.tail.len()
    }

    /// Memory this output holds: the encoding buffer's capacity, what is queued, and what a
    /// command holds for the rest of its reply.
    pub(crate) fn memory(&self) -> usize {
        self.tail.capacity() + self.queued + self.held
    }

    /// Records that the command running holds `bytes` for the rest of its reply (0 when it
    /// releases them), counted with the pending output toward the hard limit; false once that
    /// overflows the output, which then closes the client like any reply over the limit.
    pub(crate) fn hold(&mut self, bytes: usize) -> bool {
        self.held = 0;
        if !self.admit(bytes) {
            return false;
        }
        self.held = bytes;
        true
    }

    /// Whether a reply reached the hard limit; the client must then be closed.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Everything pending, in order, as one buffer (for tests and tools).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.pending());
        for (index, chunk) in self.queue.iter().enumerate() {
            let skip = if index == 0 { self.front_written } else { 0 };
            all.extend_from_slice(chunk.bytes().get(skip..).unwrap_or_default());
        }
        all.extend_from_slice(&self.tail);
        all
    }

    /// Whether `more` bytes may be added; at the hard limit everything pending is dropped.
    fn admit(&mut self, more: usize) -> bool {
        if self.overflowed {
            return false;
        }
        if self.hard_limit != 0 && self.pending().saturating_add(self.held).saturating_add(more) >= self.hard_limit {
            self.overflowed = true;
            self.tail = BytesMut::new();
            self.queue.clear();
            self.queued = 0;
            self.front_written = 0;
            self.held = 0;
            return false;
        }
        true
    }

    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        if self.admit(bytes.len()) {
            self.tail.extend_from_slice(bytes);
        }
    }

    pub(crate) fn put_u8(&mut self, byte: u8) {
        if self.admit(1) {
            self.tail.put_u8(byte);
        }
    }

    /// Appends the bytes of `iter`, which yields exactly `len` of them.
    pub(crate) fn extend_exact(&mut self, len: usize, iter: impl Iterator<Item = u8>) {
        if self.admit(len) {
            self.tail.reserve(len);
            self.tail.extend(iter);
        }
    }

    /// Queues `value` by reference, after what is encoded so far.
    pub(crate) fn push_value(&mut self, value: &CompactBytes) {
        if !self.admit(value.len()) {
            return;
        }
        if !self.tail.is_empty() {
            self.queued += self.tail.len();
            self.queue.push_back(Chunk::Owned(self.tail.split().freeze()));
        }
        self.queued += value.len();
        self.queue.push_back(Chunk::Value(value.clone()));
    }

    /// Writes as much as one write takes (waiting until the socket takes something); returns
    /// the bytes written.
    /// Writes what the socket takes right now, without waiting (`WouldBlock` when it takes
    /// nothing). The common case, replies only in the encoding buffer, writes that buffer
    /// in place: no chunk is split off, and the buffer keeps its capacity for the next reply.
    pub(crate) fn try_write_some(&mut self, stream: &TcpStream) -> io::Result<usize> {
        if !self.queue.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if self.tail.is_empty() {
            return Ok(0);
        }
        let written = stream.try_write(&self.tail)?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if written == self.tail.len() {
            self.tail.clear();
        } else {
            bytes::Buf::advance(&mut self.tail, written);
        }
        Ok(written)
    }

    pub(crate) async fn write_some(&mut self, stream: &mut TcpStream) -> io::Result<usize> {
        if !self.tail.is_empty() {
            self.queued += self.tail.len();
            self.queue.push_back(Chunk::Owned(self.tail.split().freeze()));
        }
        let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
        let mut count = 0;
        for (slot, (index, chunk)) in slices.iter_mut().zip(self.queue.iter().enumerate()) {
            let skip = if index == 0 { self.front_written } else { 0 };
            *slot = IoSlice::new(chunk.bytes().get(skip..).unwrap_or_default());
            count += 1;
        }
        if count == 0 {
            return Ok(0);
        }
        let written = stream.write_vectored(&slices[..count]).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.consume(written);
        Ok(written)
    }

    /// Drops `written` bytes from the front of the queue.
    fn consume(&mut self, mut written: usize) {
        self.queued -= written;
        while let Some(front) = self.queue.front() {
            let left = front.bytes().len() - self.front_written;
            if written < left {
                self.front_written += written;
                return;
            }
            written -= left;
            self.front_written = 0;
            self.queue.pop_front();
        }
    }

    /// Gives back the encoding buffer's memory once it is empty and larger than `keep`, as
    /// Redis's clientsCron shrinks a client's buffers after a large reply.
    pub(crate) fn trim(&mut self, keep: usize) -> bool {
        if self.tail.is_empty() && self.tail.capacity() > keep {
            self.tail = BytesMut::with_capacity(keep);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_values_are_queued_by_reference_in_order() {
        let mut out = Output::default();
        let value = CompactBytes::from(vec![b'v'; BY_REFERENCE_MIN + 1]);
        out.extend(b"*2\r\n");
        out.push_value(&value);
        out.extend(b"\r\n");
        out.push_value(&value);
        assert_eq!(out.pending(), 4 + 2 * value.len() + 2);
        // Two references, and nothing of the value's bytes copied.
        assert_eq!(out.queue.len(), 4);
        assert!(out.memory() < 4 + 2 * value.len() + 64 + out.tail.capacity());
        let all = out.to_vec();
        assert_eq!(&all[..4], b"*2\r\n");
        assert_eq!(all.len(), out.pending());
    }

    #[test]
    fn consuming_part_of_the_front_keeps_the_rest() {
        let mut out = Output::default();
        let value = CompactBytes::from(vec![b'v'; BY_REFERENCE_MIN + 1]);
        out.extend(b"ab");
        out.push_value(&value);
        out.consume(1);
        assert_eq!(out.to_vec()[..2], *b"bv");
        out.consume(2);
        assert_eq!(out.pending(), value.len() - 1);
        out.consume(value.len() - 1);
        assert_eq!(out.pending(), 0);
        assert!(out.queue.is_empty());
    }

    #[test]
    fn reaching_the_hard_limit_drops_everything_and_every_later_write() {
        let mut out = Output::with_hard_limit(100);
        out.extend(&[b'a'; 99]);
        assert!(!out.overflowed());
        out.put_u8(b'b');
        assert!(out.overflowed());
        assert_eq!(out.pending(), 0);
        out.extend(b"more");
        out.push_value(&CompactBytes::from(vec![b'v'; 10]));
        assert_eq!(out.pending(), 0, "nothing is added once overflowed");
    }

    #[test]
    fn memory_held_for_a_reply_counts_toward_the_hard_limit() {
        let mut out = Output::with_hard_limit(100);
        out.extend(&[b'a'; 40]);
        assert!(out.hold(50));
        assert_eq!((out.pending(), out.memory() - out.tail.capacity()), (40, 50));
        assert!(!out.hold(60), "40 pending and 60 held reach the limit");
        assert!(out.overflowed());
        assert_eq!(out.memory(), out.tail.capacity(), "an overflowed output holds nothing");

        let mut out = Output::with_hard_limit(100);
        assert!(out.hold(90));
        out.extend(&[b'a'; 10]);
        assert!(out.overflowed(), "what is held leaves less room for replies");
    }

    #[test]
    fn trimming_gives_back_an_empty_large_buffer_only() {
        let mut out = Output::default();
        out.extend(&vec![b'a'; 1 << 20]);
        assert!(!out.trim(16 * 1024), "pending output is never trimmed");
        out.tail.clear();
        assert!(out.trim(16 * 1024));
        assert!(out.tail.capacity() < 1 << 20);
    }
}
