//! The `cartwheel` command: nodes, local clusters, status and simulations. The
//! subcommands live in `cli/`, one file each; this only sets up logging and the runtime.

mod cli;

use anyhow::Result;

/// glibc's allocator cost about a fifth of a node's CPU under load (profile in README,
/// "Performance"); mimalloc's thread-local free lists remove most of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let cli = cli::Cli::parse_with_config_file()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    cli.runtime()?.block_on(cli.run())
}
