//! Tracing setup: pretty for people, JSON for log pipelines.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Keeps the log writer running; dropping it writes out what is still queued.
#[must_use = "logs queued when the guard is dropped are written out, later ones are lost"]
pub struct LogGuard {
    _writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Installs the global subscriber once; `RUST_LOG` refines the default `info`.
///
/// Lines are written to stderr by a thread of their own, so a request never waits on the
/// write (at `info` that was 15 % of the exchange's throughput: load-tests/RESULTS.md). The
/// queue holds 128,000 lines; if it fills, logging waits rather than drop a line.
pub fn init(format: LogFormat) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("pingpost-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = match format {
        LogFormat::Pretty => builder.compact().try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber, and its writer.
    LogGuard {
        _writer: result.is_ok().then_some(guard),
    }
}
