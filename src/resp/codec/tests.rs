use super::*;
use proptest::prelude::*;

/// Every request `bytes` holds, decoded in one go, or the first error.
fn decode_all(bytes: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
    let mut decoder = Decoder::new();
    let mut buffer = BytesMut::from(bytes);
    let mut requests = Vec::new();
    while let Some(request) = decoder.decode(&mut buffer)? {
        requests.push(request.into_vec());
    }
    Ok(requests)
}

fn words(request: &[&str]) -> Vec<Bytes> {
    request
        .iter()
        .map(|word| Bytes::copy_from_slice(word.as_bytes()))
        .collect()
}

/// A request as clients send it: an array of bulk strings.
fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[test]
fn arrays_and_inline_commands_decode() {
    let requests = decode_all(b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\nPING\r\n").unwrap();
    assert_eq!(requests, vec![words(&["ECHO", "hello"]), words(&["PING"])]);
    // A bare `\n` ends an inline line too (telnet), and blank lines are skipped.
    let requests = decode_all(b"\r\n\nset  a   b\n").unwrap();
    assert_eq!(requests, vec![words(&["set", "a", "b"])]);
}

#[test]
fn empty_arrays_are_no_request() {
    let requests = decode_all(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n").unwrap();
    assert_eq!(requests, vec![words(&["PING"])]);
}

#[test]
fn inline_quotes_group_words_and_unescape() {
    let requests = decode_all(b"SET \"a b\" 'c d' \"x\\ny\"\r\n").unwrap();
    assert_eq!(requests, vec![words(&["SET", "a b", "c d", "x\ny"])]);
    assert_eq!(
        decode_all(b"SET \"open\r\n"),
        Err(ProtocolError::UnbalancedQuotes)
    );
    assert_eq!(
        decode_all(b"SET \"a\"b\r\n"),
        Err(ProtocolError::UnbalancedQuotes)
    );
}

#[test]
fn malformed_requests_get_typed_errors() {
    let cases: &[(&[u8], ProtocolError)] = &[
        (b"*x\r\n", ProtocolError::ArrayLength),
        (b"*-2\r\n", ProtocolError::ArrayLength),
        (b"*99999999\r\n", ProtocolError::ArrayLength),
        (b"*1\r\n$x\r\n", ProtocolError::BulkLength),
        (b"*1\r\n$-1\r\n", ProtocolError::BulkLength),
        (b"*1\r\n$+3\r\n", ProtocolError::BulkLength),
        (
            b"*1\r\n*1\r\n$1\r\na\r\n",
            ProtocolError::ExpectedBulk(b'*'),
        ),
        (b"*1\r\n:1\r\n", ProtocolError::ExpectedBulk(b':')),
        (b"*1\r\n$3\r\nabcde\r\n", ProtocolError::MissingCrlf),
        (
            b"*1\r\n$000000000000000000000000000000000000000001\r\n",
            ProtocolError::CountLineTooLong,
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(
            decode_all(bytes).as_ref(),
            Err(expected),
            "{}",
            bytes.escape_ascii()
        );
    }
    assert_eq!(
        ProtocolError::ExpectedBulk(b'*').to_string(),
        "expected '$', got '*'"
    );
}

#[test]
fn an_oversized_bulk_length_is_refused_before_its_bytes_arrive() {
    let header = format!("*1\r\n${}\r\n", limits::RESP_BULK_BYTES_MAX + 1);
    assert_eq!(
        decode_all(header.as_bytes()),
        Err(ProtocolError::BulkLength)
    );
    // At the limit it waits for the bytes, holding nothing but what arrived.
    let header = format!("*1\r\n${}\r\n", limits::RESP_BULK_BYTES_MAX);
    let mut decoder = Decoder::new();
    let mut buffer = BytesMut::from(header.as_bytes());
    assert_eq!(decoder.decode(&mut buffer), Ok(None));
    assert!(buffer.capacity() < 1024, "{}", buffer.capacity());
    assert!(decoder.in_request());
}

#[test]
fn an_inline_line_without_end_is_cut_at_its_limit() {
    let mut decoder = Decoder::new();
    let mut buffer = BytesMut::from(vec![b'a'; limits::RESP_INLINE_BYTES_MAX - 1].as_slice());
    assert_eq!(decoder.decode(&mut buffer), Ok(None));
    buffer.extend_from_slice(b"a");
    assert_eq!(
        decoder.decode(&mut buffer),
        Err(ProtocolError::InlineTooLong)
    );
}

#[test]
fn held_bytes_count_the_arguments_of_an_unfinished_request() {
    let mut decoder = Decoder::new();
    let mut buffer = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nva"[..]);
    assert_eq!(decoder.decode(&mut buffer), Ok(None));
    assert_eq!(
        decoder.held_bytes(),
        4 + 2 * limits::RESP_ARGUMENT_OVERHEAD_BYTES
    );
    buffer.extend_from_slice(b"lue\r\n");
    assert_eq!(
        decoder.decode(&mut buffer),
        Ok(Some(Args::from_vec(words(&["SET", "k", "value"]))))
    );
    assert_eq!(decoder.held_bytes(), 0);
    assert!(!decoder.in_request());
}

#[test]
fn integers_parse_strictly() {
    assert_eq!(parse_integer(b"-12"), Some(-12));
    assert_eq!(parse_integer(b"9223372036854775807"), Some(i64::MAX));
    assert_eq!(parse_integer(b"-9223372036854775808"), Some(i64::MIN));
    for bad in [&b""[..], b"-", b"+1", b" 1", b"1x", b"9223372036854775808"] {
        assert_eq!(parse_integer(bad), None, "{}", bad.escape_ascii());
    }
}

fn argument() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..40)
}

fn request() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(argument(), 1..6)
}

proptest! {
    /// Whatever bytes arrive, the decoder answers (a request, a wait or an error) and
    /// never panics, fed whole or byte by byte.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_all(&bytes);
        let mut decoder = Decoder::new();
        let mut buffer = BytesMut::new();
        for byte in &bytes {
            buffer.extend_from_slice(&[*byte]);
            if decoder.decode(&mut buffer).is_err() {
                break;
            }
        }
    }

    /// Pipelined requests, cut into pieces at any points, decode to the same
    /// arguments in the same order.
    #[test]
    fn split_streams_decode_to_the_same_requests(
        requests in prop::collection::vec(request(), 1..5),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let stream: Vec<u8> = requests.iter().flat_map(|request| encode(request)).collect();
        let mut points: Vec<usize> = cuts.iter().map(|cut| cut.index(stream.len() + 1)).collect();
        points.push(stream.len());
        points.sort_unstable();
        let mut decoder = Decoder::new();
        let mut buffer = BytesMut::new();
        let mut decoded = Vec::new();
        let mut from = 0;
        for point in points {
            buffer.extend_from_slice(&stream[from..point]);
            from = point;
            while let Some(request) = decoder.decode(&mut buffer).expect("valid stream") {
                decoded.push(request.into_vec());
            }
        }
        let expected: Vec<Vec<Bytes>> = requests
            .iter()
            .map(|request| request.iter().map(|arg| Bytes::copy_from_slice(arg)).collect())
            .collect();
        prop_assert_eq!(decoded, expected);
        prop_assert!(buffer.is_empty());
        prop_assert!(!decoder.in_request());
    }

    /// Inline commands of plain words decode to their words.
    #[test]
    fn inline_words_decode(words in prop::collection::vec("[a-zA-Z0-9:_-]{1,12}", 1..6)) {
        let line = format!("{}\r\n", words.join(" "));
        let decoded = decode_all(line.as_bytes()).expect("valid line");
        let expected: Vec<Bytes> = words.iter().map(|word| Bytes::from(word.clone())).collect();
        prop_assert_eq!(decoded, vec![expected]);
    }
}
