//! The request decoder on arbitrary bytes, fed whole and in pieces: it must never panic, the
//! outcome (requests, then possibly an error) must not depend on how the bytes were cut, and
//! every call must keep the decoder's promises (see `decode`).
//!
//! The first input byte picks the limits and the piece sizes; the rest is the byte stream.
#![no_main]

use bytes::{Bytes, BytesMut};
use cstore::server::frame::{Limits, ProtocolError, RequestDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else { return };
    let limits = limits_for(control);
    let whole = decode(stream, &limits, usize::MAX, 1);
    let first_piece = usize::from(control >> 2) % 13 + 1;
    let chunked = decode(stream, &limits, first_piece, usize::from(control >> 6) + 1);
    assert_eq!(whole.requests, chunked.requests);
    assert_eq!(whole.error, chunked.error);
    if whole.error.is_none() {
        assert_eq!(whole.left, chunked.left);
    }
});

/// Redis's limits, or small ones that fuzzed inputs can actually cross.
fn limits_for(control: u8) -> Limits {
    match control & 3 {
        0 | 1 => Limits::default(),
        2 => Limits { max_bulk_len: 12, max_args: 4, max_inline_len: 16, max_request_len: 48 },
        _ => Limits { max_bulk_len: 3, max_args: 2, max_inline_len: 5, max_request_len: 20 },
    }
}

#[derive(Debug)]
struct Outcome {
    requests: Vec<Vec<Bytes>>,
    error: Option<ProtocolError>,
    left: BytesMut,
}

/// Feeds `stream` in pieces (the first of `first_piece` bytes, the others of `piece`), draining
/// complete requests after each, and checks each call: a request has arguments, `Ok(None)`
/// leaves at most `max_request_len` bytes, and what a call consumed is a prefix of the buffer.
fn decode(stream: &[u8], limits: &Limits, first_piece: usize, piece: usize) -> Outcome {
    let mut decoder = RequestDecoder::new();
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    let mut fed = 0;
    let mut size = first_piece;
    loop {
        let end = fed + size.min(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..end]);
        fed = end;
        size = piece;
        loop {
            let before = buf.clone();
            match decoder.decode(&mut buf, limits) {
                Ok(Some(args)) => {
                    assert!(!args.is_empty());
                    assert!(before.ends_with(&buf));
                    requests.push(args);
                }
                Ok(None) => {
                    assert!(buf.len() <= limits.max_request_len);
                    assert!(before.ends_with(&buf));
                    break;
                }
                Err(error) => return Outcome { requests, error: Some(error), left: buf },
            }
        }
        if fed == stream.len() {
            return Outcome { requests, error: None, left: buf };
        }
    }
}
