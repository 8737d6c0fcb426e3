//! Config files (`cartwheel node --config node.toml`): a flat TOML table whose keys are
//! the subcommand's long flags, turned into command-line arguments placed before the
//! ones actually typed, so that the typed ones win.
//!
//! What a file may say is read from the `clap::Command` itself, never from a second
//! list: a key is accepted when the subcommand has a long flag of that name
//! (`replicas-per-region`, or `replicas_per_region`), and its value is checked by that
//! flag's own parser before the command line is parsed. `key = true` becomes `--key`,
//! `false` leaves it out; an array becomes one `--key value` per element for a flag
//! that may be repeated, or one value joined with the flag's delimiter. A relative path
//! (a flag whose values are paths) is taken from the file's folder. A flag given on the
//! command line or by its environment variable, or one conflicting with such a flag, is
//! not taken from the file. This module reads one file and never touches the network.

use crate::limits;
use clap::builder::ValueHint;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, Command};
use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// The flag naming a config file; a subcommand without one takes no file.
pub const CONFIG_FLAG: &str = "config";

/// Why a config file cannot be used; each names the file, and the key when it is one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {problem}")]
    Invalid { path: String, problem: FileProblem },
}

/// What is wrong inside a config file.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum FileProblem {
    #[error("not valid TOML: {0}")]
    Toml(String),
    #[error("unknown key `{key}`{}", suggestion.as_ref().map(|known| format!(" (did you mean `{known}`?)")).unwrap_or_default())]
    UnknownKey {
        key: String,
        suggestion: Option<String>,
    },
    #[error("`{key}` cannot be set in a config file: {rule}")]
    NotSettable { key: String, rule: &'static str },
    #[error("`{key}` is given twice (as `{first}` and `{second}`)")]
    Repeated {
        key: String,
        first: String,
        second: String,
    },
    #[error("`{key}` must be {expected}, not {found}")]
    WrongType {
        key: String,
        expected: String,
        found: &'static str,
    },
    #[error("`{key}`: {message}")]
    BadValue { key: String, message: String },
}

/// `argv` with the arguments of the file its subcommand's `--config` names placed right
/// after the subcommand, before the subcommand's own arguments; `argv` unchanged when
/// no config file is given (or when it does not parse at all: clap then says why).
/// `root` is the program's command, as `CommandFactory::command()` returns it.
pub fn expand(root: Command, argv: Vec<OsString>) -> Result<Vec<OsString>, ConfigFileError> {
    let Ok(given) = root.clone().ignore_errors(true).try_get_matches_from(&argv) else {
        return Ok(argv);
    };
    let Some((name, given)) = given.subcommand() else {
        return Ok(argv);
    };
    let Ok(Some(path)) = given.try_get_one::<PathBuf>(CONFIG_FLAG) else {
        return Ok(argv);
    };
    let mut root = root;
    root.build();
    let command = root
        .find_subcommand(name)
        .expect("clap matched this subcommand");
    let text = super::read_bounded(path, limits::CONFIG_FILE_BYTES_MAX, "a config file").map_err(
        |source| ConfigFileError::Read {
            path: path.display().to_string(),
            source,
        },
    )?;
    let folder = path.parent().unwrap_or(Path::new(""));
    let skipped = set_elsewhere(command, |id| given.value_source(id));
    let from_file = file_args(command, &text, folder, &skipped).map_err(|problem| {
        ConfigFileError::Invalid {
            path: path.display().to_string(),
            problem,
        }
    })?;
    let at = subcommand_position(&root, &argv)
        .expect("clap found the subcommand, so a walk of the arguments finds it too");
    let mut expanded = argv;
    expanded.splice(at + 1..at + 1, from_file);
    Ok(expanded)
}

/// The ids of the flags that `source` says were given on the command line or by an
/// environment variable, and of the flags that conflict with them: the file must not
/// set these (it would override the command line, or clash with it).
pub fn set_elsewhere(
    command: &Command,
    source: impl Fn(&str) -> Option<ValueSource>,
) -> BTreeSet<String> {
    let given: Vec<&Arg> = command
        .get_arguments()
        .filter(|arg| {
            matches!(
                source(arg.get_id().as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .collect();
    // A conflict is declared on one of its two flags only.
    let conflict = |a: &Arg, b: &Arg| {
        let declared = |by: &Arg, with: &Arg| {
            command
                .get_arg_conflicts_with(by)
                .iter()
                .any(|other| other.get_id() == with.get_id())
        };
        declared(a, b) || declared(b, a)
    };
    command
        .get_arguments()
        .filter(|arg| {
            given
                .iter()
                .any(|set| set.get_id() == arg.get_id() || conflict(set, arg))
        })
        .map(|arg| arg.get_id().to_string())
        .collect()
}

/// The arguments a config file's `text` stands for, for the (built) `command`; keys
/// whose flag is in `skipped` are left out, relative paths are taken from `folder`.
pub fn file_args(
    command: &Command,
    text: &str,
    folder: &Path,
    skipped: &BTreeSet<String>,
) -> Result<Vec<OsString>, FileProblem> {
    let table: toml::Table =
        toml::from_str(text).map_err(|error| FileProblem::Toml(error.message().to_string()))?;
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut args = Vec::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        if let Some((first, _)) = seen.iter().find(|(_, seen_long)| *seen_long == long) {
            return Err(FileProblem::Repeated {
                key: long,
                first: first.clone(),
                second: key.clone(),
            });
        }
        seen.push((key.clone(), long.clone()));
        let arg = settable(command, key, &long)?;
        if skipped.contains(arg.get_id().as_str()) {
            continue;
        }
        args.extend(arg_values(arg, key, value, folder)?);
    }
    Ok(args)
}

/// The flag `long` names, if a file may set it.
fn settable<'a>(command: &'a Command, key: &str, long: &str) -> Result<&'a Arg, FileProblem> {
    let candidates = || {
        command
            .get_arguments()
            .filter(|arg| arg.get_long().is_some() && !is_builtin(arg))
    };
    if long == CONFIG_FLAG {
        return Err(FileProblem::NotSettable {
            key: key.to_string(),
            rule: "a config file cannot name another",
        });
    }
    if let Some(arg) = candidates().find(|arg| arg.get_long() == Some(long)) {
        return Ok(arg);
    }
    let suggestion = candidates()
        .filter_map(|arg| arg.get_long())
        .filter(|known| *known != CONFIG_FLAG)
        .map(|known| (strsim::jaro(long, known), known))
        .filter(|(similarity, _)| *similarity > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, known)| known.to_string());
    Err(FileProblem::UnknownKey {
        key: key.to_string(),
        suggestion,
    })
}

fn is_builtin(arg: &Arg) -> bool {
    matches!(
        arg.get_action(),
        ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
    )
}

/// The arguments one `key = value` line stands for.
fn arg_values(
    arg: &Arg,
    key: &str,
    value: &toml::Value,
    folder: &Path,
) -> Result<Vec<OsString>, FileProblem> {
    let flag = OsString::from(format!(
        "--{}",
        arg.get_long().expect("settable flags are long")
    ));
    let wrong = |expected: String| FileProblem::WrongType {
        key: key.to_string(),
        expected,
        found: type_name(value),
    };
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => match value {
            toml::Value::Boolean(true) => Ok(vec![flag]),
            toml::Value::Boolean(false) => Ok(Vec::new()),
            _ => Err(wrong("true or false".to_string())),
        },
        ArgAction::Set | ArgAction::Append => {
            let expected = || {
                let name = arg
                    .get_value_names()
                    .and_then(|names| names.first())
                    .map_or("VALUE".to_string(), |name| name.to_string());
                let many = if repeatable(arg) {
                    " or an array of them"
                } else {
                    ""
                };
                format!("{name} (a string or a number{many})")
            };
            let texts = match value {
                toml::Value::Array(items) if repeatable(arg) => items
                    .iter()
                    .map(|item| scalar_text(item).ok_or_else(|| wrong(expected())))
                    .collect::<Result<Vec<_>, _>>()?,
                value => vec![scalar_text(value).ok_or_else(|| wrong(expected()))?],
            };
            let mut args = Vec::new();
            let texts = match (arg.get_action(), arg.get_value_delimiter()) {
                (ArgAction::Set, Some(delimiter)) if texts.len() > 1 => {
                    vec![texts.join(&delimiter.to_string())]
                }
                _ => texts,
            };
            for text in texts {
                let text = resolved(arg, text, folder);
                check_value(arg, key, &text)?;
                args.push(flag.clone());
                args.push(text);
            }
            Ok(args)
        }
        _ => Err(FileProblem::NotSettable {
            key: key.to_string(),
            rule: "only flags that take a value or are switched on are",
        }),
    }
}

/// Whether the flag takes several values: repeated, or split at a delimiter.
fn repeatable(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append) || arg.get_value_delimiter().is_some()
}

/// A string, integer or float as the text a flag would be given.
fn scalar_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(number) => Some(number.to_string()),
        toml::Value::Float(number) => Some(number.to_string()),
        _ => None,
    }
}

fn type_name(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// `text` as the flag's value: a relative path is taken from the file's folder.
fn resolved(arg: &Arg, text: String, folder: &Path) -> OsString {
    let is_path = matches!(
        arg.get_value_hint(),
        ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath | ValueHint::ExecutablePath
    );
    if is_path && Path::new(&text).is_relative() {
        folder.join(text).into_os_string()
    } else {
        OsString::from(text)
    }
}

/// Runs the flag's own parser on the value it will get (alone, as the one argument of a
/// command), so that a wrong value is refused naming the file's key.
fn check_value(arg: &Arg, key: &str, text: &OsStr) -> Result<(), FileProblem> {
    let mut alone = Arg::new(arg.get_id().clone())
        .required(true)
        .action(ArgAction::Set)
        .value_parser(arg.get_value_parser().clone())
        .value_delimiter(arg.get_value_delimiter());
    if let Some(names) = arg.get_value_names() {
        alone = alone.value_names(names.iter().cloned());
    }
    let command = Command::new("config-file").no_binary_name(true).arg(alone);
    match command.try_get_matches_from([text]) {
        Ok(_) => Ok(()),
        Err(error) => Err(FileProblem::BadValue {
            key: key.to_string(),
            message: clap_message(&error),
        }),
    }
}

/// A clap error's text on one line, without its `error:` prefix and its hint to
/// `--help`.
fn clap_message(error: &clap::Error) -> String {
    let text = error.to_string();
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
        .map(|line| line.strip_prefix("error: ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where the subcommand stands in `argv`: after the program name and the root's own
/// flags (and their values).
fn subcommand_position(root: &Command, argv: &[OsString]) -> Option<usize> {
    let takes_value = |arg: &Arg| arg.get_action().takes_values();
    let mut at = 1;
    while let Some(token) = argv.get(at) {
        let token = token.to_string_lossy();
        if token == "--" {
            return None;
        }
        let needs_next = if let Some(long) = token.strip_prefix("--") {
            let (name, inline) = long
                .split_once('=')
                .map_or((long, false), |(name, _)| (name, true));
            root.get_arguments()
                .any(|arg| arg.get_long() == Some(name) && takes_value(arg) && !inline)
        } else if let Some(shorts) = token.strip_prefix('-').filter(|rest| !rest.is_empty()) {
            let first = shorts.chars().next();
            shorts.chars().count() == 1
                && root
                    .get_arguments()
                    .any(|arg| arg.get_short() == first && takes_value(arg))
        } else {
            let named = |sub: &Command| {
                sub.get_name() == token || sub.get_all_aliases().any(|alias| alias == token)
            };
            return root.get_subcommands().any(named).then_some(at);
        };
        at += if needs_next { 2 } else { 1 };
    }
    None
}

#[cfg(test)]
mod tests;
