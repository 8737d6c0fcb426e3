use super::*;
use crate::config::TuningFlags;
use clap::{CommandFactory, Parser, Subcommand};

/// A program shaped like `cartwheel`: a global flag, a subcommand with a config file,
/// flags of every kind, and the real tuning flags flattened in.
#[derive(Parser, Debug)]
struct Program {
    #[arg(
        long,
        global = true,
        env = "CARTWHEEL_TEST_CONFIG_FILE_COLOUR",
        default_value = "red"
    )]
    colour: String,
    #[command(subcommand)]
    command: Sub,
}

// Parsed once per test, as the real command line is.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Sub {
    Serve(Serve),
    Other {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
#[command(args_override_self = true)]
struct Serve {
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    id: String,
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:0")]
    http: std::net::SocketAddr,
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:0")]
    resp: String,
    #[arg(long, conflicts_with = "data")]
    memory: bool,
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<String>,
    #[arg(long = "tag")]
    tags: Vec<String>,
    #[command(flatten)]
    tuning: TuningFlags,
}

fn serve_command() -> Command {
    let mut root = Program::command();
    root.build();
    root.find_subcommand("serve").unwrap().clone()
}

fn args_of(text: &str) -> Result<Vec<String>, FileProblem> {
    let args = file_args(&serve_command(), text, Path::new("conf"), &BTreeSet::new())?;
    Ok(args
        .into_iter()
        .map(|arg| arg.into_string().unwrap())
        .collect())
}

fn parse(argv: &[&str]) -> Program {
    let argv = argv.iter().map(OsString::from).collect();
    Program::try_parse_from(expand(Program::command(), argv).unwrap()).unwrap()
}

fn serve(program: Program) -> Serve {
    match program.command {
        Sub::Serve(serve) => serve,
        Sub::Other { .. } => panic!("parsed as another subcommand"),
    }
}

#[test]
fn keys_become_flags_with_their_values() {
    // In the order of their keys: the order of flags does not matter to clap.
    let args = args_of("id = \"a-1\"\nreplicas_per_region = 3\ncache-mb = 64\n").unwrap();
    assert_eq!(
        args,
        [
            "--cache-mb",
            "64",
            "--id",
            "a-1",
            "--replicas-per-region",
            "3"
        ]
    );
}

#[test]
fn an_unknown_key_is_named_with_the_closest_flag() {
    let problem = args_of("replicas_per_regoin = 3\n").unwrap_err();
    assert_eq!(
        problem,
        FileProblem::UnknownKey {
            key: "replicas_per_regoin".to_string(),
            suggestion: Some("replicas-per-region".to_string()),
        }
    );
    assert!(problem.to_string().contains("replicas_per_regoin"));
    assert!(problem
        .to_string()
        .contains("did you mean `replicas-per-region`"));
    let far = args_of("zzz = 1\n").unwrap_err();
    assert_eq!(
        far,
        FileProblem::UnknownKey {
            key: "zzz".to_string(),
            suggestion: None
        }
    );
}

#[test]
fn help_version_and_config_cannot_be_set() {
    assert!(matches!(
        args_of("help = true\n").unwrap_err(),
        FileProblem::UnknownKey { key, .. } if key == "help"
    ));
    let nested = args_of("config = \"other.toml\"\n").unwrap_err();
    assert!(matches!(&nested, FileProblem::NotSettable { key, .. } if key == "config"));
    assert!(nested.to_string().contains("cannot name another"));
}

#[test]
fn a_value_of_the_wrong_type_is_named() {
    let problem = args_of("threads = true\n").unwrap_err();
    assert_eq!(
        problem,
        FileProblem::WrongType {
            key: "threads".to_string(),
            expected: "COUNT (a string or a number)".to_string(),
            found: "a boolean",
        }
    );
    let switch = args_of("memory = \"yes\"\n").unwrap_err();
    assert!(
        matches!(&switch, FileProblem::WrongType { key, found: "a string", .. } if key == "memory"),
        "{switch}"
    );
    let table = args_of("[http]\nport = 1\n").unwrap_err();
    assert!(
        matches!(&table, FileProblem::WrongType { key, found: "a table", .. } if key == "http"),
        "{table}"
    );
    let one_value = args_of("durability = [\"flush\", \"none\"]\n").unwrap_err();
    assert!(
        matches!(&one_value, FileProblem::WrongType { key, found: "an array", .. } if key == "durability"),
        "{one_value}"
    );
}

#[test]
fn a_value_its_flag_refuses_is_named_with_the_reason() {
    let problem = args_of("threads = 0\n").unwrap_err();
    let FileProblem::BadValue { key, message } = &problem else {
        panic!("{problem:?}");
    };
    assert_eq!(key, "threads");
    assert!(
        message.contains("COUNT") && message.contains('0'),
        "{message}"
    );
    assert!(
        !message.contains('\n') && !message.starts_with("error"),
        "{message}"
    );
    let level = args_of("read = \"most\"\n").unwrap_err();
    assert!(
        matches!(&level, FileProblem::BadValue { key, .. } if key == "read"),
        "{level}"
    );
    let address = args_of("http = \"nowhere\"\n").unwrap_err();
    assert!(
        matches!(&address, FileProblem::BadValue { key, .. } if key == "http"),
        "{address}"
    );
}

#[test]
fn invalid_toml_and_a_key_given_twice_are_refused() {
    assert!(matches!(
        args_of("threads = \n").unwrap_err(),
        FileProblem::Toml(_)
    ));
    let twice = args_of("cache_mb = 1\ncache-mb = 2\n").unwrap_err();
    assert!(
        matches!(&twice, FileProblem::Repeated { key, .. } if key == "cache-mb"),
        "{twice}"
    );
}

#[test]
fn a_switch_is_given_when_true_and_left_out_when_false() {
    assert_eq!(
        args_of("memory = true\nchaos = false\n").unwrap(),
        ["--memory"]
    );
}

#[test]
fn an_array_repeats_a_repeatable_flag_and_joins_a_delimited_one() {
    assert_eq!(
        args_of("tag = [\"a\", \"b\"]\nseeds = [\"n-1@127.0.0.1:1\", \"n-2@127.0.0.1:2\"]\n")
            .unwrap(),
        [
            "--seeds",
            "n-1@127.0.0.1:1",
            "--seeds",
            "n-2@127.0.0.1:2",
            "--tag",
            "a",
            "--tag",
            "b"
        ]
    );
    let mixed = args_of("tag = [\"a\", true]\n").unwrap_err();
    assert!(
        matches!(&mixed, FileProblem::WrongType { key, .. } if key == "tag"),
        "{mixed}"
    );
}

#[test]
fn relative_paths_are_taken_from_the_files_folder() {
    let args = args_of("dir = \"cluster\"\ndata = \"/abs/data\"\nresp = \"off\"\n").unwrap();
    let expected_dir = Path::new("conf").join("cluster");
    assert_eq!(
        args,
        [
            "--data",
            "/abs/data",
            "--dir",
            expected_dir.to_str().unwrap(),
            "--resp",
            "off"
        ]
    );
}

#[test]
fn keys_given_elsewhere_are_left_out() {
    let command = serve_command();
    let skipped = set_elsewhere(&command, |id| {
        (id == "r" || id == "data").then_some(ValueSource::CommandLine)
    });
    // `--r` conflicts with `--read`, `--data` with `--memory`: the file's are dropped.
    assert!(
        skipped.contains("read") && skipped.contains("memory"),
        "{skipped:?}"
    );
    let args = file_args(
        &command,
        "read = \"one\"\nmemory = true\nthreads = 2\n",
        Path::new(""),
        &skipped,
    )
    .unwrap();
    assert_eq!(args, ["--threads", "2"]);
}

/// A config file in a temporary folder.
fn config_file(text: &str) -> (tempfile::TempDir, String) {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("serve.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap().to_string();
    (folder, path)
}

#[test]
fn the_command_line_overrides_the_file() {
    let (_folder, path) = config_file(
        "id = \"from-file\"\ndir = \"/d\"\nthreads = 2\nseeds = [\"a@127.0.0.1:1\"]\nmemory = true\ncolour = \"blue\"\n",
    );
    let from_file = serve(parse(&["prog", "serve", "--config", &path]));
    assert_eq!(from_file.id, "from-file");
    assert_eq!(from_file.tuning.threads, Some(2));
    assert_eq!(from_file.seeds, ["a@127.0.0.1:1"]);
    assert!(from_file.memory);
    let program = parse(&[
        "prog",
        "--colour",
        "green",
        "serve",
        "--threads",
        "3",
        "--config",
        &path,
        "--seeds",
        "b@127.0.0.1:2",
        "--data",
        "/elsewhere",
    ]);
    assert_eq!(program.colour, "green");
    let serve = serve(program);
    assert_eq!(serve.id, "from-file");
    assert_eq!(serve.tuning.threads, Some(3));
    // A repeatable flag's values replace the file's, not add to them.
    assert_eq!(serve.seeds, ["b@127.0.0.1:2"]);
    // `--data` conflicts with the file's `memory`, which is dropped.
    assert!(!serve.memory);
    assert_eq!(serve.data, Some(PathBuf::from("/elsewhere")));
}

#[test]
fn a_global_flag_may_come_from_the_file() {
    let (_folder, path) = config_file("id = \"x\"\ndir = \"/d\"\ncolour = \"blue\"\n");
    assert_eq!(parse(&["prog", "serve", "--config", &path]).colour, "blue");
    assert_eq!(
        parse(&["prog", "serve", "--config", &path, "--colour", "pink"]).colour,
        "pink"
    );
}

#[test]
fn the_same_flag_twice_on_the_command_line_takes_the_last() {
    let program = parse(&["prog", "serve", "--id", "a", "--dir", "/d", "--id", "b"]);
    assert_eq!(serve(program).id, "b");
}

#[test]
fn without_a_config_file_the_arguments_are_unchanged() {
    let argv: Vec<OsString> = ["prog", "serve", "--id", "a"]
        .iter()
        .map(OsString::from)
        .collect();
    assert_eq!(expand(Program::command(), argv.clone()).unwrap(), argv);
    let help: Vec<OsString> = ["prog", "--help"].iter().map(OsString::from).collect();
    assert_eq!(expand(Program::command(), help.clone()).unwrap(), help);
}

#[test]
fn a_missing_or_oversized_file_is_named() {
    let argv = |path: &str| -> Vec<OsString> {
        ["prog", "serve", "--config", path]
            .iter()
            .map(OsString::from)
            .collect()
    };
    let missing = expand(Program::command(), argv("/nonexistent/serve.toml")).unwrap_err();
    assert!(matches!(missing, ConfigFileError::Read { .. }));
    assert!(
        missing.to_string().contains("/nonexistent/serve.toml"),
        "{missing}"
    );
    let padding = "# padding\n".repeat(limits::CONFIG_FILE_BYTES_MAX / 10 + 1);
    let (_folder, path) = config_file(&padding);
    let large = expand(Program::command(), argv(&path)).unwrap_err();
    assert!(
        large.to_string().contains(&path) && large.to_string().contains("longer than"),
        "{large}"
    );
}

#[test]
fn a_problem_in_the_file_names_the_file_and_the_key() {
    let (_folder, path) = config_file("id = \"a\"\nthreads = \"many\"\n");
    let argv: Vec<OsString> = ["prog", "serve", "--config", &path]
        .iter()
        .map(OsString::from)
        .collect();
    let error = expand(Program::command(), argv).unwrap_err();
    let text = error.to_string();
    assert!(text.contains(&path) && text.contains("`threads`"), "{text}");
}

#[test]
fn the_file_is_read_for_the_subcommand_that_names_it() {
    let (_folder, path) = config_file("nothing = 1\n");
    let argv: Vec<OsString> = ["prog", "other", "--config", &path]
        .iter()
        .map(OsString::from)
        .collect();
    // `other` has a config flag too: its file is checked against its own flags.
    let error = expand(Program::command(), argv).unwrap_err();
    assert!(error.to_string().contains("`nothing`"), "{error}");
}
