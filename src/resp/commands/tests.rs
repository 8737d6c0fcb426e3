use super::*;
use crate::resp::connection::Command;
use futures::future::BoxFuture;

fn commands(password: Option<&str>) -> Commands {
    Commands {
        password: password.map(|text| Password::new(text.as_bytes())),
        keyspace: None,
        server: ServerInfo {
            node: "us-east-1".to_string(),
            region: "us-east".to_string(),
            tcp_port: 6379,
        },
    }
}

fn state(authenticated: bool) -> ConnectionState {
    ConnectionState::new(7, "127.0.0.1:5000".parse().unwrap(), authenticated)
}

fn args(words: &[&str]) -> Args {
    words
        .iter()
        .map(|word| Bytes::copy_from_slice(word.as_bytes()))
        .collect()
}

/// The reply's RESP2 text.
async fn run(commands: &Commands, state: &mut ConnectionState, words: &[&str]) -> String {
    let (reply, _) = commands.execute(state, args(words)).await;
    String::from_utf8_lossy(&reply.to_bytes(state.protocol)).into_owned()
}

#[tokio::test]
async fn ping_echo_and_select_answer_as_redis() {
    let commands = commands(None);
    let mut state = state(true);
    assert_eq!(run(&commands, &mut state, &["ping"]).await, "+PONG\r\n");
    assert_eq!(
        run(&commands, &mut state, &["PING", "hi"]).await,
        "$2\r\nhi\r\n"
    );
    assert_eq!(
        run(&commands, &mut state, &["PING", "a", "b"]).await,
        "-ERR wrong number of arguments for 'ping' command\r\n"
    );
    assert_eq!(
        run(&commands, &mut state, &["ECHO", "x"]).await,
        "$1\r\nx\r\n"
    );
    assert_eq!(
        run(&commands, &mut state, &["ECHO"]).await,
        "-ERR wrong number of arguments for 'echo' command\r\n"
    );
    assert_eq!(
        run(&commands, &mut state, &["SELECT", "0"]).await,
        "+OK\r\n"
    );
    assert_eq!(
        run(&commands, &mut state, &["SELECT", "1"]).await,
        "-ERR DB index is out of range\r\n"
    );
    assert_eq!(
        run(&commands, &mut state, &["SELECT", "x"]).await,
        "-ERR value is not an integer or out of range\r\n"
    );
}

#[tokio::test]
async fn without_auth_only_the_greeting_commands_are_answered() {
    let commands = commands(Some("pw"));
    let mut state = state(false);
    assert_eq!(
        run(&commands, &mut state, &["GET", "k"]).await,
        "-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(run(&commands, &mut state, &["PING"]).await, "+PONG\r\n");
    assert_eq!(
        run(&commands, &mut state, &["AUTH", "wrong"]).await,
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(
        run(&commands, &mut state, &["AUTH", "other", "pw"]).await,
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert!(run(&commands, &mut state, &["HELLO", "3"])
        .await
        .starts_with("-NOAUTH HELLO"));
    assert_eq!(
        run(&commands, &mut state, &["AUTH", "default", "pw"]).await,
        "+OK\r\n"
    );
    assert!(state.authenticated);
    // RESET logs out again.
    assert_eq!(run(&commands, &mut state, &["RESET"]).await, "+RESET\r\n");
    assert!(!state.authenticated);
}

#[tokio::test]
async fn auth_without_a_password_set_is_an_error() {
    let commands = commands(None);
    let mut state = state(true);
    assert!(run(&commands, &mut state, &["AUTH", "x"])
        .await
        .starts_with("-ERR AUTH <password> called without any password configured"));
}

#[tokio::test]
async fn hello_switches_to_resp3_authenticates_and_names() {
    let commands = commands(Some("pw"));
    let mut state = state(false);
    let reply = run(
        &commands,
        &mut state,
        &["HELLO", "3", "AUTH", "default", "pw", "SETNAME", "web"],
    )
    .await;
    assert!(
        reply.starts_with("%8\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
        "{reply}"
    );
    assert!(reply.contains("$5\r\nproto\r\n:3\r\n"), "{reply}");
    assert!(reply.contains("$2\r\nid\r\n:7\r\n"), "{reply}");
    assert_eq!(state.protocol, Protocol::Resp3);
    assert!(state.authenticated);
    assert_eq!(state.name.as_deref(), Some(&b"web"[..]));
    assert_eq!(
        run(&commands, &mut state, &["HELLO", "4"]).await,
        "-NOPROTO unsupported protocol version\r\n"
    );
    // In RESP3 a missing name is `_`.
    assert_eq!(
        run(&commands, &mut state, &["CLIENT", "SETNAME", ""]).await,
        "+OK\r\n"
    );
    assert_eq!(
        run(&commands, &mut state, &["CLIENT", "GETNAME"]).await,
        "_\r\n"
    );
    let reply = run(&commands, &mut state, &["HELLO", "2"]).await;
    assert!(reply.starts_with("*16\r\n"), "{reply}");
    assert_eq!(state.protocol, Protocol::Resp2);
}

#[tokio::test]
async fn client_subcommands_answer_as_redis() {
    let commands = commands(None);
    let mut state = state(true);
    assert_eq!(
        run(&commands, &mut state, &["CLIENT", "ID"]).await,
        ":7\r\n"
    );
    assert_eq!(
        run(&commands, &mut state, &["CLIENT", "GETNAME"]).await,
        "$-1\r\n"
    );
    assert_eq!(
        run(&commands, &mut state, &["client", "setname", "app"]).await,
        "+OK\r\n"
    );
    assert_eq!(
        run(&commands, &mut state, &["CLIENT", "GETNAME"]).await,
        "$3\r\napp\r\n"
    );
    assert_eq!(
        run(&commands, &mut state, &["CLIENT", "SETNAME", "a b"]).await,
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    );
    assert_eq!(
        run(
            &commands,
            &mut state,
            &["CLIENT", "SETINFO", "LIB-NAME", "redis-rs"]
        )
        .await,
        "+OK\r\n"
    );
    assert_eq!(
        run(
            &commands,
            &mut state,
            &["CLIENT", "SETINFO", "LIB-VER", "0.27"]
        )
        .await,
        "+OK\r\n"
    );
    let info = run(&commands, &mut state, &["CLIENT", "INFO"]).await;
    assert!(
        info.contains("name=app") && info.contains("lib-name=redis-rs"),
        "{info}"
    );
    assert_eq!(
        run(&commands, &mut state, &["CLIENT", "KILL"]).await,
        "-ERR unknown subcommand 'KILL'. Try CLIENT HELP.\r\n"
    );
}

#[tokio::test]
async fn unknown_refused_and_unserved_commands_name_themselves() {
    let commands = commands(None);
    let mut state = state(true);
    assert_eq!(
        run(&commands, &mut state, &["FOO", "a", "b"]).await,
        "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"
    );
    let multi = run(&commands, &mut state, &["multi"]).await;
    assert!(
        multi.starts_with("-ERR 'MULTI' is not supported by cartwheel"),
        "{multi}"
    );
    let subscribe = run(&commands, &mut state, &["PUBLISH", "c", "m"]).await;
    assert!(
        subscribe.starts_with("-ERR 'PUBLISH' is not supported"),
        "{subscribe}"
    );
    let get = run(&commands, &mut state, &["get", "k"]).await;
    assert_eq!(
        get,
        "-ERR 'GET' is not served yet: this node has no keyspace attached\r\n"
    );
    assert_eq!(run(&commands, &mut state, &["DBSIZE"]).await, ":0\r\n");
    let (reply, after) = commands.execute(&mut state, args(&["QUIT"])).await;
    assert_eq!((reply, after), (Reply::ok(), After::Close));
}

#[tokio::test]
async fn command_and_info_give_minimal_answers_clients_accept() {
    let commands = commands(None);
    let mut state = state(true);
    assert_eq!(run(&commands, &mut state, &["COMMAND"]).await, "*0\r\n");
    assert_eq!(
        run(&commands, &mut state, &["COMMAND", "DOCS"]).await,
        "*0\r\n"
    );
    let count = run(&commands, &mut state, &["COMMAND", "COUNT"]).await;
    assert_eq!(count, format!(":{}\r\n", CONNECTION.len() + DATA.len()));
    let info = run(&commands, &mut state, &["INFO"]).await;
    assert!(
        info.contains("# Server\r\nredis_version:7.4.0\r\n"),
        "{info}"
    );
    assert!(
        info.contains("tcp_port:6379\r\n") && info.contains("# Keyspace\r\n"),
        "{info}"
    );
    let keyspace = run(&commands, &mut state, &["INFO", "keyspace"]).await;
    assert!(!keyspace.contains("# Server"), "{keyspace}");
}

/// A keyspace that answers every command with its name and arguments, and counts 3 keys.
struct Echoing;

impl Keyspace for Echoing {
    fn execute<'a>(
        &'a self,
        connection: &'a mut ConnectionState,
        command: Command,
    ) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            connection.write = Some(crate::coordinator::quorum::Level::All);
            Reply::Array(command.words().into_iter().map(Reply::Bulk).collect())
        })
    }

    fn size(&self) -> BoxFuture<'_, Option<u64>> {
        Box::pin(async { Some(3) })
    }
}

#[tokio::test]
async fn data_commands_reach_the_keyspace_with_the_name_in_upper_case() {
    let mut commands = commands(None);
    commands.keyspace = Some(Arc::new(Echoing));
    let mut state = state(true);
    assert_eq!(
        run(&commands, &mut state, &["get", "k"]).await,
        "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    );
    assert_eq!(state.write, Some(crate::coordinator::quorum::Level::All));
    // DBSIZE counts the cluster's keys: the keyspace's command, not `size`.
    assert_eq!(
        run(&commands, &mut state, &["DBSIZE"]).await,
        "*1\r\n$6\r\nDBSIZE\r\n"
    );
    let info = run(&commands, &mut state, &["INFO", "keyspace"]).await;
    assert!(info.contains("db0:keys=3,"), "{info}");
    // Connection commands stay the edge's.
    assert_eq!(run(&commands, &mut state, &["PING"]).await, "+PONG\r\n");
}

#[test]
fn only_one_key_data_commands_of_a_served_connection_run_beside_others() {
    let mut commands = commands(None);
    let beside = |commands: &Commands, state: &ConnectionState, words: &[&str]| {
        commands
            .runs_beside(state, &args(words))
            .map(|key| String::from_utf8_lossy(key).into_owned())
    };
    // No keyspace: nothing runs beside anything.
    assert_eq!(beside(&commands, &state(true), &["GET", "k"]), None);
    commands.keyspace = Some(Arc::new(Echoing));
    let served = state(true);
    for words in [
        &["get", "k"][..],
        &["SET", "k", "v", "NX"],
        &["HINCRBY", "k", "f", "1"],
        &["DEL", "k"],
        &["exists", "k"],
        &["TTL", "k"],
    ] {
        assert_eq!(
            beside(&commands, &served, words).as_deref(),
            Some("k"),
            "{words:?}"
        );
    }
    for words in [
        &["DEL", "a", "b"][..],
        &["EXISTS", "a", "b"],
        &["MGET", "a", "b"],
        &["MSET", "a", "1"],
        &["RENAME", "a", "b"],
        &["SCAN", "0"],
        &["DBSIZE"],
        &["CARTWHEEL", "LEVEL", "read", "one"],
        &["PING"],
        &["CLIENT", "SETNAME", "x"],
        &["GET"],
    ] {
        assert_eq!(beside(&commands, &served, words), None, "{words:?}");
    }
    // A connection that has not authenticated is answered in order, one by one.
    assert_eq!(beside(&commands, &state(false), &["GET", "k"]), None);
}
