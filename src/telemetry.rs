//! Logging set-up: JSON lines in production (or LOG_FORMAT=json), compact human-readable lines
//! elsewhere; the request span's fields (request id, client IP, route) appear on every line.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{Environment, LogFormat, Settings};

/// Installs the global subscriber once; later calls are no-ops (tests build several apps).
pub fn init(settings: &Settings) {
    let filter = EnvFilter::try_new(&settings.log_level)
        .or_else(|_| EnvFilter::try_new("info"))
        .unwrap_or_default();
    let json = match settings.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => settings.environment == Environment::Production,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE)
        .with_target(true);
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}
