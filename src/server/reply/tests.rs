use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::server::output::Output;
use crate::server::resp_value::{Value, parse_value};

/// What `write` puts in a fresh buffer, in each protocol.
fn encoded(write: impl Fn(&mut ReplyWriter)) -> [Bytes; 2] {
    [Protocol::Resp2, Protocol::Resp3].map(|protocol| {
        let mut out = Output::default();
        write(&mut ReplyWriter::new(&mut out, protocol));
        Bytes::from(out.to_vec())
    })
}

#[track_caller]
fn assert_encodes(write: impl Fn(&mut ReplyWriter), resp2: &str, resp3: &str) {
    assert_eq!(encoded(write), [Bytes::copy_from_slice(resp2.as_bytes()), Bytes::copy_from_slice(resp3.as_bytes())]);
}

#[test]
fn types_common_to_both_protocols_encode_the_same() {
    assert_encodes(|w| w.ok(), "+OK\r\n", "+OK\r\n");
    assert_encodes(|w| w.simple("PONG"), "+PONG\r\n", "+PONG\r\n");
    assert_encodes(|w| w.error("ERR syntax error"), "-ERR syntax error\r\n", "-ERR syntax error\r\n");
    assert_encodes(|w| w.integer(-42), ":-42\r\n", ":-42\r\n");
    assert_encodes(|w| w.integer(i64::MIN), ":-9223372036854775808\r\n", ":-9223372036854775808\r\n");
    assert_encodes(|w| w.bulk(b"a\r\nb"), "$4\r\na\r\nb\r\n", "$4\r\na\r\nb\r\n");
    assert_encodes(|w| w.bulk(b""), "$0\r\n\r\n", "$0\r\n\r\n");
    assert_encodes(|w| w.array(3), "*3\r\n", "*3\r\n");
}

#[test]
fn resp3_types_fall_back_to_what_redis_sends_in_resp2() {
    assert_encodes(|w| w.null(), "$-1\r\n", "_\r\n");
    assert_encodes(|w| w.null_array(), "*-1\r\n", "_\r\n");
    assert_encodes(|w| w.map(2), "*4\r\n", "%2\r\n");
    assert_encodes(|w| w.set(2), "*2\r\n", "~2\r\n");
    assert_encodes(|w| w.double(1.5), "$3\r\n1.5\r\n", ",1.5\r\n");
    assert_encodes(|w| w.boolean(true), ":1\r\n", "#t\r\n");
    assert_encodes(|w| w.boolean(false), ":0\r\n", "#f\r\n");
    assert_encodes(|w| w.verbatim("txt", b"hello"), "$5\r\nhello\r\n", "=9\r\ntxt:hello\r\n");
}

#[test]
fn line_breaks_in_simple_strings_and_errors_become_spaces() {
    assert_encodes(|w| w.error("ERR a\r\nb\nc"), "-ERR a  b c\r\n", "-ERR a  b c\r\n");
    assert_encodes(|w| w.simple("a\rb"), "+a b\r\n", "+a b\r\n");
    // Exactly what Redis sends for this protocol error.
    let error = crate::server::frame::ProtocolError::ExpectedBulk { found: b'\r' };
    assert_encodes(
        |w| w.error(&format!("ERR {error}")),
        "-ERR Protocol error: expected '$', got ' '\r\n",
        "-ERR Protocol error: expected '$', got ' '\r\n",
    );
}

#[test]
fn the_protocol_can_change_between_replies() {
    let mut out = Output::default();
    let mut writer = ReplyWriter::new(&mut out, Protocol::Resp2);
    writer.null();
    writer.set_protocol(Protocol::Resp3);
    assert_eq!(writer.protocol(), Protocol::Resp3);
    writer.null();
    assert_eq!(out.to_vec(), b"$-1\r\n_\r\n");
}

#[test]
fn doubles_are_formatted_as_redis_7_2_does() {
    let cases: [(f64, &str); 24] = [
        (0.0, "0"),
        (-0.0, "-0"),
        (f64::NAN, "nan"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
        (3.0, "3"),
        (-17.0, "-17"),
        (1.5, "1.5"),
        (-0.1, "-0.1"),
        (123.456, "123.456"),
        (0.0001, "0.0001"),
        (0.00001, "0.00001"),
        (0.001234567, "0.001234567"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (1e17, "100000000000000000"),
        // Integral up to 2^62: Redis's integer formatter.
        (123456789012345678.0, "123456789012345680"),
        (4611686018427387904.0, "4611686018427387904"),
        // Above 2^62: fpconv, with up to seven trailing zeros written out.
        (9223372036854775808.0, "9223372036854776000"),
        (1e19, "1e+19"),
        (1.5e20, "1.5e+20"),
        (1e300, "1e+300"),
        (f64::MAX, "1.7976931348623157e+308"),
        (5e-324, "5e-324"),
    ];
    for (value, text) in cases {
        assert_eq!(format_double(value).as_bytes(), text.as_bytes(), "{value:e}");
    }
}

/// Writes `value` with the writer method meant for it. `Null` and `NullArray` stand for
/// `null()` and `null_array()`; RESP2-only and server-never types are not generated.
fn write_value(writer: &mut ReplyWriter, value: &Value) {
    match value {
        Value::Simple(text) => writer.simple(std::str::from_utf8(text).expect("generated as text")),
        Value::Error(text) => writer.error(std::str::from_utf8(text).expect("generated as text")),
        Value::Integer(n) => writer.integer(*n),
        Value::Bulk(bytes) => writer.bulk(bytes),
        Value::Null => writer.null(),
        Value::NullArray => writer.null_array(),
        Value::Array(items) => {
            writer.array(items.len());
            items.iter().for_each(|item| write_value(writer, item));
        }
        Value::Map(pairs) => {
            writer.map(pairs.len());
            for (key, value) in pairs {
                write_value(writer, key);
                write_value(writer, value);
            }
        }
        Value::Set(items) => {
            writer.set(items.len());
            items.iter().for_each(|item| write_value(writer, item));
        }
        Value::Double(value) => writer.double(*value),
        Value::Boolean(value) => writer.boolean(*value),
        Value::Verbatim { format, text } => {
            writer.verbatim(std::str::from_utf8(format).expect("generated as text"), text)
        }
        Value::NullBulk | Value::BlobError(_) | Value::BigNumber(_) | Value::Push(_) => {
            unreachable!("not generated: ReplyWriter has no method for {value:?}")
        }
    }
}

/// What a client decodes after `write_value(value)` in `protocol`.
fn as_received(value: &Value, protocol: Protocol) -> Value {
    let each = |items: &[Value]| items.iter().map(|item| as_received(item, protocol)).collect::<Vec<_>>();
    match (protocol, value) {
        (Protocol::Resp2, Value::Null) => Value::NullBulk,
        (Protocol::Resp3, Value::NullArray) => Value::Null,
        (Protocol::Resp2, Value::Map(pairs)) => Value::Array(
            pairs.iter().flat_map(|(key, value)| [as_received(key, protocol), as_received(value, protocol)]).collect(),
        ),
        (Protocol::Resp3, Value::Map(pairs)) => Value::Map(
            pairs.iter().map(|(key, value)| (as_received(key, protocol), as_received(value, protocol))).collect(),
        ),
        (Protocol::Resp2, Value::Set(items)) | (_, Value::Array(items)) => Value::Array(each(items)),
        (Protocol::Resp3, Value::Set(items)) => Value::Set(each(items)),
        (Protocol::Resp2, Value::Double(value)) => {
            Value::Bulk(Bytes::copy_from_slice(format_double(*value).as_bytes()))
        }
        (Protocol::Resp2, Value::Boolean(value)) => Value::Integer(i64::from(*value)),
        (Protocol::Resp2, Value::Verbatim { text, .. }) => Value::Bulk(text.clone()),
        (_, other) => other.clone(),
    }
}

/// Replies the writer can produce; doubles are never NaN, which no decoded value equals.
fn writable_value() -> impl Strategy<Value = Value> {
    let text = "[ -~]{0,12}".prop_map(Bytes::from);
    let leaf = prop_oneof![
        text.clone().prop_map(Value::Simple),
        text.prop_map(|text| Value::Error(Bytes::from(format!("ERR {}", String::from_utf8_lossy(&text))))),
        any::<i64>().prop_map(Value::Integer),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(|bytes| Value::Bulk(Bytes::from(bytes))),
        Just(Value::Null),
        Just(Value::NullArray),
        prop_oneof![any::<f64>().prop_filter("NaN is never equal", |value| !value.is_nan()), Just(f64::INFINITY)]
            .prop_map(Value::Double),
        any::<bool>().prop_map(Value::Boolean),
        ("[a-z]{3}", prop::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(format, text)| Value::Verbatim { format: Bytes::from(format), text: Bytes::from(text) }),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Set),
            prop::collection::vec((inner.clone(), inner), 0..4).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #[test]
    fn what_the_writer_encodes_a_client_decodes(values in prop::collection::vec(writable_value(), 1..4)) {
        for protocol in [Protocol::Resp2, Protocol::Resp3] {
            let mut out = Output::default();
            let mut writer = ReplyWriter::new(&mut out, protocol);
            values.iter().for_each(|value| write_value(&mut writer, value));
            let all = out.to_vec();
            let mut rest = &all[..];
            for value in &values {
                let (decoded, used) = parse_value(rest).expect("valid reply").expect("complete reply");
                prop_assert_eq!(decoded, as_received(value, protocol));
                rest = &rest[used..];
            }
            prop_assert!(rest.is_empty());
        }
    }

    #[test]
    fn doubles_read_back_as_the_same_double(value in any::<f64>().prop_filter("NaN is never equal", |v| !v.is_nan())) {
        let text = format_double(value);
        let parsed: f64 = std::str::from_utf8(text.as_bytes()).unwrap().parse().unwrap();
        prop_assert_eq!(parsed.to_bits(), value.to_bits());
    }
}
