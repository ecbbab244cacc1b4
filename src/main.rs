//! The `pingpost` command: serve the exchange, apply migrations, or run the demo buyers.

// Input from sellers, buyers and the database must never panic the server: outside tests no
// `unwrap()`; a panic that cannot happen says why in an `expect`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

// jemalloc instead of the system allocator: see Cargo.toml.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use pingpost::config::Config;
use pingpost::startup::Application;
use pingpost::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(name = "pingpost", version, about = "A ping-post lead exchange")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the exchange (applies migrations first).
    Serve {
        #[arg(long, env = "PINGPOST_CONFIG", default_value = "exchange.toml")]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "pretty")]
        log_format: LogFormat,
    },
    /// Apply the database migrations and exit. Safe to run again.
    Migrate {
        #[arg(long, env = "PINGPOST_CONFIG", default_value = "exchange.toml")]
        config: PathBuf,
    },
    /// Serve the bid and post endpoints of the demo buyers named in the buyers directory.
    DemoBuyers {
        #[arg(long, env = "PINGPOST_CONFIG", default_value = "exchange.toml")]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "pretty")]
        log_format: LogFormat,
    },
}

/// Every buyer connection is a file descriptor: an auction over hundreds of buyers on a
/// 1,024-descriptor soft limit would fail to connect. The soft limit is raised to the hard one,
/// as far as the system allows, without privileges.
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "the open files limit could not be raised"),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, log_format } => {
            let _logs = telemetry::init(log_format);
            let config = load(&config)?;
            raise_open_files_limit();
            actix_web::rt::System::new().block_on(async move {
                let app = Application::build(config).await?;
                tracing::info!(port = app.port(), "pingpost is serving");
                app.run_until_stopped().await.context("serving")
            })
        }
        Command::DemoBuyers { config, log_format } => {
            let _logs = telemetry::init(log_format);
            let config = load(&config)?;
            actix_web::rt::System::new().block_on(async move { pingpost::demo::run(&config).await })
        }
        Command::Migrate { config } => {
            let _logs = telemetry::init(LogFormat::Pretty);
            let config = load(&config)?;
            actix_web::rt::System::new().block_on(async move {
                let store = pingpost::store::connect(&config.database_url).await?;
                store.migrate().await?;
                tracing::info!("migrations applied");
                Ok(())
            })
        }
    }
}

/// A configuration error ends start-up with its one-line message (file, key, problem).
fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}
