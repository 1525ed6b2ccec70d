//! Expected answers come from a real redis-server 7.0 fed the same bytes, except where the
//! module documentation lists a deliberate difference.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::server::resp_value::encode_command;

const REDIS: Limits = Limits {
    max_bulk_len: 512 * 1024 * 1024,
    max_args: 1024 * 1024,
    max_inline_len: 64 * 1024,
    max_request_len: 1024 * 1024 * 1024,
    unauthenticated: false,
};

/// Limits small enough for property tests to cross every one of them.
const SMALL: Limits =
    Limits { max_bulk_len: 12, max_args: 4, max_inline_len: 16, max_request_len: 48, unauthenticated: false };

fn decode_one(input: &[u8], limits: &Limits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    parse_request(&mut BytesMut::from(input), limits)
}

fn strings(args: &[Bytes]) -> Vec<&[u8]> {
    args.iter().map(|arg| &arg[..]).collect()
}

#[track_caller]
fn assert_args(input: &[u8], expected: &[&[u8]]) {
    let args = decode_one(input, &REDIS).expect("valid request").expect("complete request");
    assert_eq!(strings(&args), expected, "input {:?}", Bytes::copy_from_slice(input));
}

#[track_caller]
fn assert_error(input: &[u8], limits: &Limits, expected: &str) {
    let error = decode_one(input, limits).expect_err("invalid request");
    assert_eq!(error.to_string(), expected, "input {:?}", Bytes::copy_from_slice(input));
}

#[track_caller]
fn assert_pending(input: &[u8], limits: &Limits) {
    let mut buf = BytesMut::from(input);
    assert_eq!(parse_request(&mut buf, limits), Ok(None));
    assert_eq!(&buf[..], input, "nothing of an incomplete request is consumed");
}

/// Everything decoding `input` yields, in order, and what it leaves.
#[derive(Debug, PartialEq)]
struct Outcome {
    requests: Vec<Vec<Bytes>>,
    error: Option<ProtocolError>,
    left: Bytes,
}

fn decode_whole(input: &[u8], limits: &Limits) -> Outcome {
    drain(&mut RequestDecoder::new(), &mut BytesMut::from(input), limits)
}

/// Decodes requests from `buf` until more bytes are needed or an error comes.
fn drain(decoder: &mut RequestDecoder, buf: &mut BytesMut, limits: &Limits) -> Outcome {
    let mut requests = Vec::new();
    loop {
        match decoder.decode(buf, limits) {
            Ok(Some(args)) => requests.push(args),
            Ok(None) => return Outcome { requests, error: None, left: buf.clone().freeze() },
            Err(error) => return Outcome { requests, error: Some(error), left: buf.clone().freeze() },
        }
    }
}

/// Feeds `input` in pieces of the given sizes (cycled), decoding after each piece with one
/// long-lived decoder (or a fresh one per call), and checks on every call that the bytes consumed
/// are exactly what was returned: on their own they decode to the same request (or, for
/// `Ok(None)`, to nothing at all).
fn decode_chunked(input: &[u8], piece_sizes: &[usize], limits: &Limits, keep_decoder: bool) -> Outcome {
    let mut decoder = RequestDecoder::new();
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    let mut fed = 0;
    // Offset in `input` of the first byte still in `buf`.
    let mut start = 0;
    for &size in piece_sizes.iter().cycle() {
        let end = (fed + size.max(1)).min(input.len());
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
        loop {
            let before = buf.len();
            let result = if keep_decoder { decoder.decode(&mut buf, limits) } else { parse_request(&mut buf, limits) };
            let consumed = &input[start..start + before - buf.len()];
            start += consumed.len();
            assert_eq!(&buf[..], &input[start..fed], "the rest of the buffer is untouched");
            match result {
                Ok(Some(args)) => {
                    assert!(!args.is_empty(), "requests always have arguments");
                    let alone = decode_whole(consumed, limits);
                    assert_eq!((alone.requests, alone.error, alone.left.len()), (vec![args.clone()], None, 0));
                    requests.push(args);
                }
                Ok(None) => {
                    assert!(buf.len() <= limits.max_request_len, "Ok(None) keeps the buffer within the limit");
                    let alone = decode_whole(consumed, limits);
                    assert_eq!((alone.requests.len(), alone.error, alone.left.len()), (0, None, 0));
                    break;
                }
                Err(error) => return Outcome { requests, error: Some(error), left: buf.freeze() },
            }
        }
        if fed == input.len() {
            return Outcome { requests, error: None, left: buf.freeze() };
        }
    }
    unreachable!("the cycle ends once all input is fed")
}

#[test]
fn default_limits_are_redis_defaults() {
    assert_eq!(Limits::default(), REDIS);
}

#[test]
fn multibulk_requests_are_split_into_their_arguments() {
    assert_args(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", &[b"GET", b"k"]);
    assert_args(b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$4\r\na\r\nb\r\n", &[b"SET", b"", b"a\r\nb"]);
    assert_args(b"*1\r\n$3\r\n\x00\xff\n\r\n", &[b"\x00\xff\n"]);
}

#[test]
fn a_server_borrows_arguments_from_the_read_buffer() {
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nECHO ab \"c\\nd\"\n"[..]);
    let read_buffer = buf.as_ptr_range();
    let mut decoder = RequestDecoder::new();
    let len = decoder.decode_front(&mut buf, &REDIS).unwrap().expect("a complete request");
    assert_eq!(len, 20);
    let args: Vec<&[u8]> = decoder.args(&buf[..len]).collect();
    assert_eq!(args, [&b"GET"[..], b"k"]);
    assert!(args.iter().all(|arg| read_buffer.contains(&arg.as_ptr())), "no argument is copied");
    buf.advance(len);
    let len = decoder.decode_front(&mut buf, &REDIS).unwrap().expect("a complete inline request");
    let args: Vec<&[u8]> = decoder.args(&buf[..len]).collect();
    assert_eq!(args, [&b"ECHO"[..], b"ab", b"c\nd"]);
    assert!(read_buffer.contains(&args[1].as_ptr()), "unquoted inline arguments are borrowed too");
    assert!(!read_buffer.contains(&args[2].as_ptr()), "an argument with escapes is decoded");
    buf.advance(len);
    assert_eq!(decoder.decode_front(&mut buf, &REDIS), Ok(None));
}

#[test]
fn inline_requests_end_at_a_newline_with_an_optional_carriage_return() {
    for input in [&b"PING\r\n"[..], b"PING\n", b" PING\t\r\n", b"PING\r\r\n"] {
        assert_args(input, &[b"PING"]);
    }
    assert_args(b"SET k v\r\n", &[b"SET", b"k", b"v"]);
    assert_args(b"ECHO a\rb\n", &[b"ECHO", b"a", b"b"]);
}

#[test]
fn inline_quoting_follows_redis() {
    let cases: [(&[u8], &[&[u8]]); 13] = [
        (b"SET k \"a b\"\n", &[b"SET", b"k", b"a b"]),
        (b"ECHO \"a\\x41\\xZZ\\n\"\n", &[b"ECHO", b"aAxZZ\n"]),
        (b"ECHO \"\\r\\t\\b\\a\\\\\\\"\\q\\x4a\\x4A\"\n", &[b"ECHO", b"\r\t\x08\x07\\\"qJJ"]),
        (b"ECHO 'a\\'b' c\n", &[b"ECHO", b"a'b", b"c"]),
        (b"ECHO 'a\\nb'\n", &[b"ECHO", b"a\\nb"]),
        (b"ECHO a\"b c\" d\n", &[b"ECHO", b"ab c", b"d"]),
        (b"ECHO \"\" ''\n", &[b"ECHO", b"", b""]),
        // '\v' and '\f' separate arguments only where blanks are skipped, not inside one.
        (b"ECHO a\x0bb\n", &[b"ECHO", b"a\x0bb"]),
        (b"\x0bECHO a\x0cb\n", &[b"ECHO", b"a\x0cb"]),
        (b"ECHO \"a\"\x0b\n", &[b"ECHO", b"a"]),
        (b"ECHO \"a\"\tb\n", &[b"ECHO", b"a", b"b"]),
        (b"ECHO \"a\"\r\n", &[b"ECHO", b"a"]),
        (b"ECHO \xff\xfe\n", &[b"ECHO", b"\xff\xfe"]),
    ];
    for (input, expected) in cases {
        assert_args(input, expected);
    }
}

#[test]
fn unbalanced_quotes_are_refused() {
    for input in [
        &b"ECHO \"a\n"[..],
        b"ECHO 'a\r\n",
        b"ECHO \"a\"x\n",
        b"ECHO 'a'x\n",
        b"ECHO \"a\\\"\n",
        b"ECHO 'a\\'\n",
        b"ECHO \"a\\\n",
        b"ECHO a\"b c\"d\n",
    ] {
        assert_error(input, &REDIS, "Protocol error: unbalanced quotes in request");
    }
}

#[test]
fn requests_without_arguments_are_skipped() {
    assert_args(b"*0\r\n*-1\r\n*-5\r\n   \n\r\n\r\r\n\nPING\n", &[b"PING"]);
    let mut buf = BytesMut::from(&b"*0\r\n\r\n \t\n*2\r\n$3\r\nGE"[..]);
    assert_eq!(parse_request(&mut buf, &REDIS), Ok(None));
    assert_eq!(&buf[..], b"*2\r\n$3\r\nGE", "skipped requests are dropped, the incomplete one is kept");
}

#[test]
fn bytes_redis_skips_without_looking_are_not_checked() {
    // The byte after a header's '\r' and the two bytes after a payload.
    assert_args(b"*1\rX$4\r\nPING\r\n", &[b"PING"]);
    assert_args(b"*1\r\n$4\rxPINGxx", &[b"PING"]);
}

#[test]
fn header_numbers_are_read_like_string2ll() {
    let cases: [(&[u8], Option<i64>); 12] = [
        (b"0", Some(0)),
        (b"7", Some(7)),
        (b"-1", Some(-1)),
        (b"9223372036854775807", Some(i64::MAX)),
        (b"-9223372036854775808", Some(i64::MIN)),
        (b"9223372036854775808", None),
        (b"-0", None),
        (b"01", None),
        (b"+1", None),
        (b"", None),
        (b"-", None),
        (b"1 ", None),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_header_number(text), expected, "{:?}", Bytes::copy_from_slice(text));
    }
}

#[test]
fn invalid_multibulk_lengths_are_refused() {
    for input in [&b"*x\r\n"[..], b"*\r\n", b"*01\r\n", b"*+1\r\n", b"*1 \r\n", b"*99999999999999999999\r\n"] {
        assert_error(input, &REDIS, "Protocol error: invalid multibulk length");
    }
    assert_pending(b"*1048576\r\n", &REDIS);
    assert_error(b"*1048577\r\n", &REDIS, "Protocol error: invalid multibulk length");
}

#[test]
fn invalid_bulk_lengths_are_refused() {
    for input in [&b"*1\r\n$-1\r\n"[..], b"*1\r\n$04\r\nPING\r\n", b"*1\r\n$x\r\n", b"*1\r\n$\r\n"] {
        assert_error(input, &REDIS, "Protocol error: invalid bulk length");
    }
    assert_pending(b"*1\r\n$536870912\r\n", &REDIS);
    assert_error(b"*1\r\n$536870913\r\n", &REDIS, "Protocol error: invalid bulk length");
}

#[test]
fn a_missing_dollar_is_refused_once_its_line_is_complete() {
    assert_pending(b"*1\r\nX", &REDIS);
    assert_pending(b"*1\r\nX\r", &REDIS);
    assert_error(b"*1\r\nX\r\n", &REDIS, "Protocol error: expected '$', got 'X'");
    assert_error(b"*2\r\n$1\r\na\r\n:1\r\n", &REDIS, "Protocol error: expected '$', got ':'");
    // Redis echoes the raw byte; the reply writer turns CR and LF into spaces, as Redis does.
    assert_error(b"*1\r\n\r\n", &REDIS, "Protocol error: expected '$', got '\r'");
    assert_eq!(decode_one(b"*1\r\n\xff\r\n", &REDIS), Err(ProtocolError::ExpectedBulk { found: 0xff }));
}

#[test]
fn lines_longer_than_the_inline_limit_are_refused() {
    let mut line = vec![b'a'; 64 * 1024];
    assert_pending(&line, &REDIS);
    line.push(b'\n');
    assert_eq!(decode_one(&line, &REDIS).unwrap().unwrap().len(), 1, "a line of exactly the limit is fine");
    line.pop();
    line.push(b'a');
    assert_error(&line, &REDIS, "Protocol error: too big inline request");
    line.push(b'\n');
    assert_error(&line, &REDIS, "Protocol error: too big inline request");

    let mut count = b"*".to_vec();
    count.extend(std::iter::repeat_n(b'1', 64 * 1024 - 1));
    assert_pending(&count, &REDIS);
    count.push(b'1');
    assert_error(&count, &REDIS, "Protocol error: too big mbulk count string");

    let mut len = b"*1\r\n$".to_vec();
    len.extend(std::iter::repeat_n(b'1', 64 * 1024 - 1));
    assert_pending(&len, &REDIS);
    len.push(b'1');
    assert_error(&len, &REDIS, "Protocol error: too big bulk count string");
}

#[test]
fn a_nul_before_the_end_of_a_line_means_the_line_never_ends() {
    // Redis finds line ends with strchr, which stops at a NUL; it waits, then finds the line too big.
    for (start, error) in [
        (&b"ECHO a\x00b\n"[..], "Protocol error: too big inline request"),
        (b"*1\x00\r\n", "Protocol error: too big mbulk count string"),
        (b"*1\r\n$1\x00\r\n", "Protocol error: too big bulk count string"),
    ] {
        assert_pending(start, &REDIS);
        let mut flood = start.to_vec();
        flood.extend(std::iter::repeat_n(b'x', 70_000));
        assert_error(&flood, &REDIS, error);
    }
    // In a payload a NUL is just a byte.
    assert_args(b"*1\r\n$3\r\na\x00b\r\n", &[b"a\x00b"]);
}

#[test]
fn requests_longer_than_the_request_limit_are_refused() {
    let limits = Limits { max_request_len: 32, ..REDIS };
    let too_big = "Protocol error: too big request (max_request_len is 32 bytes)";
    let exactly_the_limit = b"*1\r\n$21\r\n012345678901234567890\r\n";
    assert_eq!(exactly_the_limit.len(), 32);
    assert_eq!(decode_one(exactly_the_limit, &limits).unwrap().unwrap()[0].len(), 21);
    assert_error(b"*1\r\n$22\r\n0123456789012345678901\r\n", &limits, too_big);
    // An announced payload that cannot fit is refused before it arrives.
    assert_error(b"*1\r\n$1000\r\n", &limits, too_big);
    // So is a partial request that has already passed the limit.
    assert_error(b"*9\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$", &limits, too_big);
    let inline_limits = Limits { max_request_len: 8, ..REDIS };
    assert_pending(b"ECHO abc", &inline_limits);
    assert_error(b"ECHO abcd", &inline_limits, "Protocol error: too big request (max_request_len is 8 bytes)");
}

#[test]
fn pipelined_requests_are_decoded_one_by_one() {
    let input = b"*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n\r\nQUIT\n*1\r\n$4\r\nPI";
    let outcome = decode_whole(input, &REDIS);
    let requests: Vec<Vec<&[u8]>> = outcome.requests.iter().map(|args| strings(args)).collect();
    assert_eq!(requests, [vec![&b"PING"[..]], vec![b"ECHO", b"hi"], vec![b"GET", b"k"], vec![b"QUIT"]]);
    assert_eq!((outcome.error, &outcome.left[..]), (None, &b"*1\r\n$4\r\nPI"[..]));
}

#[test]
fn a_request_split_anywhere_decodes_once_complete() {
    let requests: [&[u8]; 4] = [
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n",
        b"SET k \"a b\" 'c'\r\n",
        b"*0\r\n\r\n*1\r\n$4\r\nPING\r\n",
        b"*2\r\n$1\r\nX\r\n:1\r\n",
    ];
    for request in requests {
        let whole = decode_whole(request, &REDIS);
        for cut in 0..request.len() {
            let mut buf = BytesMut::from(&request[..cut]);
            let mut decoder = RequestDecoder::new();
            assert_eq!(decoder.decode(&mut buf, &REDIS), Ok(None), "cut at {cut}");
            buf.extend_from_slice(&request[cut..]);
            assert_eq!(drain(&mut decoder, &mut buf, &REDIS), whole, "cut at {cut}");
        }
        for piece in 1..4 {
            assert_eq!(decode_chunked(request, &[piece], &REDIS, true), whole);
        }
    }
}

#[test]
fn a_long_request_fed_byte_by_byte_resumes_where_it_stopped() {
    let args: Vec<String> = (0..300).map(|n| format!("argument-{n}")).collect();
    let mut input = BytesMut::new();
    encode_command(&args, &mut input);
    let outcome = decode_chunked(&input, &[1, 7, 3], &REDIS, true);
    assert_eq!((outcome.requests.len(), outcome.error, outcome.left.len()), (1, None, 0));
    assert!(outcome.requests[0].iter().map(|arg| &arg[..]).eq(args.iter().map(String::as_bytes)));
}

#[test]
fn a_decoder_whose_buffer_was_replaced_starts_over() {
    let mut decoder = RequestDecoder::new();
    let mut buf = BytesMut::from(&b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1"[..]);
    assert_eq!(decoder.decode(&mut buf, &REDIS), Ok(None));
    let mut other = BytesMut::from(&b"*1\r\n$1\r\nz\r\n"[..]);
    assert_eq!(decoder.decode(&mut other, &REDIS).unwrap().unwrap(), [Bytes::from_static(b"z")]);
    assert_eq!(decoder.decode(&mut buf, &REDIS), Ok(None));
    let mut inline = BytesMut::from(&b"PING x\r\n"[..]);
    let args = decoder.decode(&mut inline, &REDIS).unwrap().unwrap();
    assert_eq!(args, [Bytes::from_static(b"PING"), Bytes::from_static(b"x")], "no payload of the old buffer");
}

/// Bytes that look like requests often enough to reach every branch: protocol punctuation,
/// small numbers, quotes, whole valid requests, and arbitrary bytes.
fn request_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        prop::sample::select(vec![
            &b"*"[..],
            b"$",
            b"\r\n",
            b"\r",
            b"\n",
            b"\"",
            b"'",
            b"\\",
            b"\\x4",
            b" ",
            b"\t",
            b"\x00",
            b"-1",
            b"0",
            b"*1\r\n",
            b"$3\r\n",
        ])
        .prop_map(<[u8]>::to_vec),
        (0u32..30).prop_map(|n| n.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 1..6),
        "[a-z]{1,6}".prop_map(String::into_bytes),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 0..4).prop_map(|args| {
            let mut out = BytesMut::new();
            encode_command(&args, &mut out);
            out.to_vec()
        }),
    ];
    prop::collection::vec(fragment, 0..30).prop_map(|fragments| fragments.concat())
}

fn any_limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        Just(REDIS),
        Just(SMALL),
        (0usize..20, 0usize..6, 0usize..24, 0usize..64, any::<bool>()).prop_map(
            |(max_bulk_len, max_args, max_inline_len, max_request_len, unauthenticated)| Limits {
                max_bulk_len,
                max_args,
                max_inline_len,
                max_request_len,
                unauthenticated,
            }
        ),
    ]
}

proptest! {
    #[test]
    fn chunking_never_changes_the_outcome(
        input in request_like_bytes(),
        piece_sizes in prop::collection::vec(1usize..12, 1..8),
        limits in any_limits(),
    ) {
        let whole = decode_whole(&input, &limits);
        for keep_decoder in [true, false] {
            let chunked = decode_chunked(&input, &piece_sizes, &limits, keep_decoder);
            prop_assert_eq!(&chunked.requests, &whole.requests);
            prop_assert_eq!(&chunked.error, &whole.error);
            if whole.error.is_none() {
                prop_assert_eq!(&chunked.left, &whole.left);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..200), limits in any_limits()) {
        let whole = decode_whole(&input, &limits);
        prop_assert!(whole.requests.iter().all(|args| !args.is_empty()));
        let chunked = decode_chunked(&input, &[3, 1, 5], &limits, true);
        prop_assert_eq!((chunked.requests, chunked.error), (whole.requests, whole.error));
    }

    #[test]
    fn encoded_commands_decode_to_their_arguments(
        commands in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..6), 1..5),
    ) {
        let mut input = BytesMut::new();
        for args in &commands {
            encode_command(args, &mut input);
        }
        let outcome = decode_whole(&input, &REDIS);
        let decoded: Vec<Vec<Vec<u8>>> =
            outcome.requests.iter().map(|args| args.iter().map(|arg| arg.to_vec()).collect()).collect();
        prop_assert_eq!(decoded, commands);
        prop_assert_eq!((outcome.error, outcome.left.len()), (None, 0));
    }
}

/// Redis 7.0.15's answers to a client that has not authenticated while a password is set.
#[test]
fn before_auth_ten_arguments_and_16_kib_bulks_at_most() {
    let before_auth = Limits { unauthenticated: true, ..REDIS };
    let decode = |bytes: &[u8], limits: &Limits| parse_request(&mut BytesMut::from(bytes), limits);
    assert_eq!(decode(b"*11\r\n", &before_auth), Err(ProtocolError::UnauthenticatedMultibulkLength));
    assert_eq!(decode(b"*11\r\n", &REDIS), Ok(None));
    assert_eq!(decode(b"*10\r\n", &before_auth), Ok(None));
    assert_eq!(decode(b"*2\r\n$16385\r\n", &before_auth), Err(ProtocolError::UnauthenticatedBulkLength));
    assert_eq!(decode(b"*2\r\n$16384\r\n", &before_auth), Ok(None));
    assert_eq!(
        ProtocolError::UnauthenticatedMultibulkLength.to_string(),
        "Protocol error: unauthenticated multibulk length"
    );
    assert_eq!(ProtocolError::UnauthenticatedBulkLength.to_string(), "Protocol error: unauthenticated bulk length");
}
