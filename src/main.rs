//! The `cartwheel` command: nodes, local clusters, status and simulations. The
//! subcommands live in `cli/`, one file each; this only expands a config file, sets up
//! logging and the runtime.

mod cli;

use anyhow::Result;
use cli::logs::{self, LogFormat};

/// glibc's allocator cost about a fifth of a node's CPU under load (profile in README,
/// "Performance"); mimalloc's thread-local free lists remove most of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let cli = cli::Cli::parse_with_config_file()?;
    if let Some(id) = cli.node_id() {
        logs::add_process_field("node", id);
    }
    logs::init(cli.log_format);
    // Before any thread starts: the processes this one starts log the same way.
    std::env::set_var(logs::LOG_FORMAT_VARIABLE, cli.log_format.name());
    let json = cli.log_format == LogFormat::Json;
    match cli.runtime()?.block_on(cli.run()) {
        // A collector reading JSON gets the reason as one more line.
        Err(error) if json => {
            tracing::error!(error = format!("{error:#}"), "exiting");
            std::process::exit(1)
        }
        result => result,
    }
}
