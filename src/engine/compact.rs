//! The engine's byte string for keys and values.
//!
//! Every stored key and value is one of these, so its layout decides most of the memory a
//! key costs. `bytes::Bytes` (32-byte handle, plus a 24-byte shared header once it is
//! cloned or sliced, plus the buffer) cost cstore 228 bytes per 11-byte key with a
//! 64-byte value; a `CompactBytes` is a 24-byte handle that holds up to 20 bytes inline
//! (most keys, every integer) and otherwise points at one allocation holding the reference
//! count and the bytes. Clones are cheap either way (a copy, or a reference-count
//! increment), so a reader that took a value is never affected by a later overwrite or
//! delete of its key.

use std::borrow::Borrow;
use std::fmt;
use std::ops::{Deref, RangeBounds};

use byteview::ByteView;

/// The longest string a [`CompactBytes`] holds: its length is a `u32`.
pub const MAX_STRING_LEN: usize = u32::MAX as usize;

/// The longest string a [`CompactBytes`] holds inline, in its handle; longer ones have an
/// allocation of their own (byteview's inline size on 64-bit targets).
pub const INLINE_LEN: usize = 20;

/// An immutable, cheaply cloned byte string, compared and hashed as its bytes.
///
/// Building one from more than [`MAX_STRING_LEN`] bytes panics; the server refuses such requests
/// before they reach the engine (`proto-max-bulk-len` is capped at this length).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CompactBytes(ByteView);

impl CompactBytes {
    /// The sub-range `range` of these bytes, sharing the allocation (or inline if short).
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Self {
        CompactBytes(self.0.slice(range))
    }

    /// `left` followed by `right`, in one allocation (APPEND).
    pub fn concat(left: &[u8], right: &[u8]) -> Self {
        CompactBytes(ByteView::fused(left, right))
    }
}

impl Deref for CompactBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for CompactBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Maps keyed by `CompactBytes` are searched with a plain `&[u8]`; `Hash` and `Eq` both
/// look at the bytes only, as `Borrow` requires.
impl Borrow<[u8]> for CompactBytes {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for CompactBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

impl From<&[u8]> for CompactBytes {
    fn from(bytes: &[u8]) -> Self {
        CompactBytes(ByteView::new(bytes))
    }
}

impl<const N: usize> From<&[u8; N]> for CompactBytes {
    fn from(bytes: &[u8; N]) -> Self {
        CompactBytes::from(&bytes[..])
    }
}

impl From<&str> for CompactBytes {
    fn from(text: &str) -> Self {
        CompactBytes::from(text.as_bytes())
    }
}

impl From<String> for CompactBytes {
    fn from(text: String) -> Self {
        CompactBytes::from(text.as_bytes())
    }
}

impl From<Vec<u8>> for CompactBytes {
    fn from(bytes: Vec<u8>) -> Self {
        CompactBytes::from(bytes.as_slice())
    }
}

/// Copies: a request buffer is never kept alive by what the engine stores.
impl From<bytes::Bytes> for CompactBytes {
    fn from(bytes: bytes::Bytes) -> Self {
        CompactBytes::from(bytes.as_ref())
    }
}

impl From<&bytes::Bytes> for CompactBytes {
    fn from(bytes: &bytes::Bytes) -> Self {
        CompactBytes::from(bytes.as_ref())
    }
}

impl PartialEq<[u8]> for CompactBytes {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<&[u8]> for CompactBytes {
    fn eq(&self, other: &&[u8]) -> bool {
        **self == **other
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn short_and_long_strings_read_back_and_compare_as_their_bytes() {
        for len in [0, 1, 19, 20, 21, 64, 4096] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let compact = CompactBytes::from(bytes.as_slice());
            assert_eq!(&*compact, bytes.as_slice(), "len {len}");
            assert_eq!(compact.clone(), compact, "len {len}");
            let hasher = foldhash::fast::FixedState::with_seed(7);
            assert_eq!(hasher.hash_one(&compact), hasher.hash_one(bytes.as_slice()), "len {len}: Borrow contract");
        }
        assert_ne!(CompactBytes::from("abcd-long-enough-to-live-on-the-heap"), CompactBytes::from("abcd"));
    }

    #[test]
    fn slices_and_concatenation() {
        let long = CompactBytes::from("hello, a value long enough for the heap");
        assert_eq!(&*long.slice(7..14), b"a value");
        assert_eq!(&*long.slice(..5), b"hello");
        assert_eq!(&*CompactBytes::concat(b"foo", b"bar"), b"foobar");
        assert_eq!(format!("{:?}", CompactBytes::from(&b"a\"\n"[..])), r#"b"a\"\n""#);
    }
}
