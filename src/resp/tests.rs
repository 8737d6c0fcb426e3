use super::*;
use bytes::Bytes;

fn both(reply: &Reply) -> (String, String) {
    let text = |protocol| String::from_utf8_lossy(&reply.to_bytes(protocol)).into_owned();
    (text(Protocol::Resp2), text(Protocol::Resp3))
}

#[test]
fn replies_encode_in_both_protocols_as_redis_degrades_them() {
    let cases: Vec<(Reply, &str, &str)> = vec![
        (Reply::ok(), "+OK\r\n", "+OK\r\n"),
        (Reply::err("boom"), "-ERR boom\r\n", "-ERR boom\r\n"),
        (Reply::Integer(-7), ":-7\r\n", ":-7\r\n"),
        (Reply::bulk("hi"), "$2\r\nhi\r\n", "$2\r\nhi\r\n"),
        (Reply::Null, "$-1\r\n", "_\r\n"),
        (Reply::NullArray, "*-1\r\n", "_\r\n"),
        (
            Reply::Array(vec![Reply::Integer(1), Reply::Null]),
            "*2\r\n:1\r\n$-1\r\n",
            "*2\r\n:1\r\n_\r\n",
        ),
        (
            Reply::Map(vec![(Reply::bulk("a"), Reply::Integer(1))]),
            "*2\r\n$1\r\na\r\n:1\r\n",
            "%1\r\n$1\r\na\r\n:1\r\n",
        ),
        (
            Reply::Set(vec![Reply::bulk("x")]),
            "*1\r\n$1\r\nx\r\n",
            "~1\r\n$1\r\nx\r\n",
        ),
        (Reply::Double(1.5), "$3\r\n1.5\r\n", ",1.5\r\n"),
        (Reply::Double(f64::INFINITY), "$3\r\ninf\r\n", ",inf\r\n"),
        (Reply::Boolean(true), ":1\r\n", "#t\r\n"),
        (Reply::Boolean(false), ":0\r\n", "#f\r\n"),
        (
            Reply::Verbatim {
                format: *b"txt",
                text: Bytes::from_static(b"abc"),
            },
            "$3\r\nabc\r\n",
            "=7\r\ntxt:abc\r\n",
        ),
    ];
    for (reply, resp2, resp3) in cases {
        assert_eq!(
            both(&reply),
            (resp2.to_string(), resp3.to_string()),
            "{reply:?}"
        );
    }
}

#[test]
fn line_replies_cannot_carry_a_line_break() {
    // A command name the client chose appears in the error; it must not end the line.
    let args = [Bytes::from_static(b"FOO\r\n+OK"), Bytes::from_static(b"x")];
    let (resp2, _) = both(&Reply::unknown_command(&args));
    assert_eq!(
        resp2,
        "-ERR unknown command 'FOO  +OK', with args beginning with: 'x' \r\n"
    );
}

#[test]
fn a_password_is_needed_off_loopback() {
    let password = Password::new(b"secret");
    for loopback in [
        "127.0.0.1:6379",
        "127.9.9.9:0",
        "[::1]:6379",
        "[::ffff:127.0.0.1]:1",
    ] {
        assert!(
            check_bind(loopback.parse().unwrap(), None).is_ok(),
            "{loopback}"
        );
    }
    for open in ["0.0.0.0:6379", "10.0.0.1:6379", "[::]:6379"] {
        let addr = open.parse().unwrap();
        let error = check_bind(addr, None).unwrap_err();
        assert!(
            error.to_string().contains("--resp-password-file"),
            "{error}"
        );
        assert!(check_bind(addr, Some(&password)).is_ok());
    }
}

#[test]
fn a_password_file_gives_its_first_line() {
    let password = password_from_file_text("s3cret\nignored\n").unwrap();
    assert!(password.matches(b"s3cret"));
    assert!(!password.matches(b"s3cret\n"));
    assert!(!password.matches(b""));
    assert!(matches!(
        password_from_file_text("\n"),
        Err(RespConfigError::EmptyPassword)
    ));
    let long = "p".repeat(limits::RESP_PASSWORD_BYTES_MAX + 1);
    assert!(matches!(
        password_from_file_text(&long),
        Err(RespConfigError::PasswordTooLong)
    ));
    assert!(!format!("{password:?}").contains("s3cret"));
}
