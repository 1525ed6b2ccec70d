use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

#[track_caller]
fn assert_decodes(input: &str, expected: Value) {
    assert_eq!(parse_value(input.as_bytes()), Ok(Some((expected, input.len()))), "input {input:?}");
}

#[test]
fn every_resp2_and_resp3_type_decodes() {
    assert_decodes("+OK\r\n", Value::Simple(b("OK")));
    assert_decodes("-ERR bad\r\n", Value::Error(b("ERR bad")));
    assert_decodes(":-12\r\n", Value::Integer(-12));
    assert_decodes("$5\r\na\r\nbc\r\n", Value::Bulk(b("a\r\nbc")));
    assert_decodes("$-1\r\n", Value::NullBulk);
    assert_decodes("*2\r\n:1\r\n$1\r\nx\r\n", Value::Array(vec![Value::Integer(1), Value::Bulk(b("x"))]));
    assert_decodes("*-1\r\n", Value::NullArray);
    assert_decodes("*0\r\n", Value::Array(vec![]));
    assert_decodes("_\r\n", Value::Null);
    assert_decodes(",1.5\r\n", Value::Double(1.5));
    assert_decodes(",-inf\r\n", Value::Double(f64::NEG_INFINITY));
    assert_decodes(",1e+300\r\n", Value::Double(1e300));
    assert_decodes("#t\r\n", Value::Boolean(true));
    assert_decodes("#f\r\n", Value::Boolean(false));
    assert_decodes("!21\r\nSYNTAX invalid syntax\r\n", Value::BlobError(b("SYNTAX invalid syntax")));
    assert_decodes("=15\r\ntxt:Some string\r\n", Value::Verbatim { format: b("txt"), text: b("Some string") });
    assert_decodes(
        "(-3492890328409238509324850943850943825024385\r\n",
        Value::BigNumber(b("-3492890328409238509324850943850943825024385")),
    );
    assert_decodes(
        "%2\r\n+a\r\n:1\r\n+b\r\n_\r\n",
        Value::Map(vec![(Value::Simple(b("a")), Value::Integer(1)), (Value::Simple(b("b")), Value::Null)]),
    );
    assert_decodes("~1\r\n#t\r\n", Value::Set(vec![Value::Boolean(true)]));
    assert_decodes(
        ">2\r\n+message\r\n$2\r\nhi\r\n",
        Value::Push(vec![Value::Simple(b("message")), Value::Bulk(b("hi"))]),
    );
    assert!(matches!(parse_value(b",nan\r\n"), Ok(Some((Value::Double(value), 6))) if value.is_nan()));
}

#[test]
fn only_the_first_reply_is_decoded() {
    assert_eq!(parse_value(b":1\r\n:2\r\n"), Ok(Some((Value::Integer(1), 4))));
}

#[test]
fn a_reply_cut_anywhere_is_incomplete() {
    let input = b"*3\r\n%1\r\n+k\r\n$3\r\nabc\r\n=7\r\ntxt:abc\r\n,2.5\r\n";
    for cut in 0..input.len() {
        assert_eq!(parse_value(&input[..cut]), Ok(None), "cut at {cut}");
    }
    assert!(parse_value(input).unwrap().is_some());
}

#[test]
fn malformed_replies_are_refused() {
    let cases: [(&[u8], ValueError); 14] = [
        (b"?\r\n", ValueError::UnknownType(b'?')),
        (b"+OK\rX", ValueError::Malformed("line ending")),
        (b":x\r\n", ValueError::Malformed("integer")),
        (b"$-2\r\n", ValueError::Malformed("length")),
        (b"$x\r\n", ValueError::Malformed("length")),
        (b"$1\r\nabc", ValueError::Malformed("blob ending")),
        (b"_x\r\n", ValueError::Malformed("null")),
        (b",one\r\n", ValueError::Malformed("double")),
        (b"#x\r\n", ValueError::Malformed("boolean")),
        (b"=3\r\ntxt\r\n", ValueError::Malformed("verbatim string")),
        (b"(12a\r\n", ValueError::Malformed("big number")),
        (b"(\r\n", ValueError::Malformed("big number")),
        (b"%-1\r\n", ValueError::Malformed("length")),
        (b"!-1\r\n", ValueError::Malformed("length")),
    ];
    for (input, error) in cases {
        assert_eq!(parse_value(input), Err(error), "input {:?}", Bytes::copy_from_slice(input));
    }
}

#[test]
fn nesting_is_bounded() {
    let deep = "*1\r\n".repeat(MAX_DEPTH + 1);
    assert_eq!(parse_value(deep.as_bytes()), Err(ValueError::TooDeep));
    let allowed = "*1\r\n".repeat(MAX_DEPTH) + "_\r\n";
    assert!(parse_value(allowed.as_bytes()).unwrap().is_some());
}

#[test]
fn a_huge_announced_count_allocates_nothing_before_the_elements_arrive() {
    assert_eq!(parse_value(b"*9223372036854775807\r\n:1\r\n"), Ok(None));
    assert_eq!(parse_value(b"%4611686018427387903\r\n"), Ok(None));
    assert_eq!(parse_value(b"$9223372036854775807\r\nabc"), Ok(None));
}

#[test]
fn commands_are_encoded_as_arrays_of_bulk_strings() {
    let mut out = BytesMut::new();
    encode_command(&["SET", "k", ""], &mut out);
    assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
}

/// Any value, nested; text without line breaks where RESP requires one line.
fn any_value() -> impl Strategy<Value = Value> {
    let line = "[^\r\n]{0,10}".prop_map(Bytes::from);
    let blob = prop::collection::vec(any::<u8>(), 0..12).prop_map(Bytes::from);
    let leaf = prop_oneof![
        line.clone().prop_map(Value::Simple),
        line.prop_map(Value::Error),
        any::<i64>().prop_map(Value::Integer),
        blob.clone().prop_map(Value::Bulk),
        Just(Value::NullBulk),
        Just(Value::NullArray),
        Just(Value::Null),
        any::<f64>().prop_filter("NaN is never equal", |value| !value.is_nan()).prop_map(Value::Double),
        any::<bool>().prop_map(Value::Boolean),
        blob.clone().prop_map(Value::BlobError),
        ("[a-z]{3}", blob).prop_map(|(format, text)| Value::Verbatim { format: Bytes::from(format), text }),
        "-?[0-9]{1,30}".prop_map(|digits| Value::BigNumber(Bytes::from(digits))),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Set),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Push),
            prop::collection::vec((inner.clone(), inner), 0..4).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #[test]
    fn encoded_values_decode_to_themselves(value in any_value()) {
        let mut out = BytesMut::new();
        value.encode(&mut out);
        prop_assert_eq!(parse_value(&out), Ok(Some((value, out.len()))));
        for cut in 0..out.len() {
            prop_assert_eq!(parse_value(&out[..cut]), Ok(None));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_what_decodes_reencodes(input in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(Some((value, used))) = parse_value(&input) {
            prop_assert!(used <= input.len());
            let mut out = BytesMut::new();
            value.encode(&mut out);
            let (again, _) = parse_value(&out).expect("re-encoded value is valid").expect("and complete");
            // A NaN double makes a value unequal to itself, so compare the wire forms.
            let mut out_again = BytesMut::new();
            again.encode(&mut out_again);
            prop_assert_eq!(out, out_again);
        }
    }
}
