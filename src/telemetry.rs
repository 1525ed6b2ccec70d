//! Logging and tracing setup shared by every subcommand.

use tracing_subscriber::EnvFilter;

use crate::server::config::LogFormat;

/// Installs the global `tracing` subscriber: `RUST_LOG` filters (default `info`), logs go to
/// standard error as text or as one JSON object per line.
pub fn init_logging(format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|error| anyhow::anyhow!("cannot install the log subscriber: {error}"))
}
