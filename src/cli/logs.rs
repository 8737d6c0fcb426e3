//! The process's log: tracing events on stderr, filtered by `RUST_LOG` (default
//! `info`), as text for people or as one JSON object per line for log collectors.
//!
//! JSON lines are tracing-subscriber's (`timestamp`, `level`, `fields`, `target`, and
//! `spans`, where a request's `x-request-id` shows), plus the fields of the process
//! (`add_process_field`): a node's `node` and `region`. They are added to every line,
//! whatever thread logged it (sled's own threads included), which no span could do.
//! Text lines stay as they always were.

use std::collections::BTreeMap;
use std::sync::RwLock;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Json, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The environment variable that sets `--log-format` when the flag is not given. The
/// processes a command starts (the nodes of `cluster up` and `sim`) inherit it, so they
/// log in the format of the command that started them (`main` sets it).
pub const LOG_FORMAT_VARIABLE: &str = "CARTWHEEL_LOG_FORMAT";

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`, `spans`;
    /// a node's `node` and `region`).
    Json,
}

impl LogFormat {
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Fields every JSON line of this process carries, by name. A handful, set at start.
static PROCESS_FIELDS: RwLock<BTreeMap<&'static str, String>> = RwLock::new(BTreeMap::new());

/// Adds `name: value` to every JSON line from now on (a node's id, then its region once
/// the topology is read).
pub fn add_process_field(name: &'static str, value: &str) {
    PROCESS_FIELDS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(name, value.to_string());
}

/// Installs the process's subscriber; called once, before any event.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .event_format(WithProcessFields(
                format::format()
                    .json()
                    .with_current_span(false)
                    .with_span_list(true),
            ))
            .init(),
    }
}

/// tracing-subscriber's JSON line with the process's fields added at its top level
/// (beside `fields`, so an event's own `node` or `region` field is never overwritten).
/// A line is parsed and written again by serde_json: a few microseconds per event,
/// and a node logs no event per request.
struct WithProcessFields(format::Format<Json>);

impl<S, N> FormatEvent<S, N> for WithProcessFields
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.0
            .format_event(context, Writer::new(&mut line), event)?;
        let fields = PROCESS_FIELDS
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let parsed = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&line);
        let (false, Ok(mut object)) = (fields.is_empty(), parsed) else {
            return writer.write_str(&line);
        };
        for (name, value) in fields.iter() {
            object.insert(name.to_string(), serde_json::Value::from(value.as_str()));
        }
        writeln!(writer, "{}", serde_json::Value::Object(object))
    }
}
