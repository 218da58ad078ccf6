//! Logging: JSON lines (default, for log pipelines) or human-readable text, filtered by
//! `--log-level` / `RUST_LOG`. Nothing secret is ever passed to `tracing`.

use clap::{Args, ValueEnum};
use tracing_subscriber::{EnvFilter, fmt};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log format.
    #[arg(
        long,
        env = "KUBEINVOKE_LOG_FORMAT",
        value_enum,
        default_value = "json"
    )]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `kubeinvoke=debug,kube=info` (RUST_LOG syntax).
    #[arg(long, env = "KUBEINVOKE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// Installs the global subscriber; call once, first thing.
pub fn init(args: &LogArgs) {
    let filter = EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}
