//! The reply decoder (the client side of RESP) on arbitrary bytes: it must never panic; what it
//! decodes must encode to bytes it decodes back to the same wire form, and every strict prefix
//! of a short encoding must be reported incomplete rather than wrong.
#![no_main]

use bytes::BytesMut;
use cstore::server::resp_value::parse_value;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some((value, used))) = parse_value(data) else { return };
    assert!(used <= data.len());
    let mut encoded = BytesMut::new();
    value.encode(&mut encoded);
    let (again, again_used) = parse_value(&encoded).expect("an encoded value is valid").expect("and complete");
    assert_eq!(again_used, encoded.len());
    // A NaN double is unequal to itself, so compare wire forms rather than values.
    let mut reencoded = BytesMut::new();
    again.encode(&mut reencoded);
    assert_eq!(encoded, reencoded);
    // Quadratic, so only for short encodings: long ones would slow every run down.
    for cut in (0..encoded.len()).take_while(|_| encoded.len() <= 256) {
        assert_eq!(parse_value(&encoded[..cut]), Ok(None));
    }
});
