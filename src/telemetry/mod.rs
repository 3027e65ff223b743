//! Metrics and the diagnostic log (the access log is [`crate::access_log`]).

mod describe;
pub mod metrics;
pub mod process;
pub mod refusal_log;
pub mod request_metrics;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds) for request-duration histograms: 100 µs to 30 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 30.0,
];

/// The process-wide Prometheus recorder, installed on first use. Every gateway in the
/// process (tests run several) shares it.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
            .map(|b| b.build_recorder())
            // The bucket list is a non-empty constant, so this cannot fail; fall back to
            // summaries rather than panic if it ever did.
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        if ::metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        describe::describe_all();
        ::metrics::gauge!(metrics::BUILD_INFO, "version" => VERSION, "revision" => REVISION)
            .set(1.0);
        // Counters that would otherwise first appear when something goes wrong are present
        // at 0 from the start, so `rate()` and alerts see them before the first event.
        for result in ["success", "failure"] {
            ::metrics::counter!(metrics::SIGV4_CREDENTIAL_RELOADS_TOTAL, "result" => result)
                .increment(0);
        }
        for reason in ["revoked", "untrusted"] {
            ::metrics::counter!(metrics::REVOKED_CONNECTIONS_TOTAL, "reason" => reason)
                .increment(0);
        }
        ::metrics::counter!(metrics::ACCESS_LOG_DROPPED_TOTAL).increment(0);
        handle
    })
}

/// The crate version (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision the binary was built from (`build.rs`; `unknown` outside a checkout).
pub const REVISION: &str = env!("PORTCULLIS_GIT_REVISION");
/// The cargo profile the binary was built with (`debug` or `release`).
pub const PROFILE: &str = env!("PORTCULLIS_BUILD_PROFILE");

/// The `/metrics` body: the recorder's families, then the process metrics read now.
pub fn render() -> String {
    let mut out = prometheus().render();
    process::Sample::read().render_into(&mut out);
    out
}

/// Install the diagnostic log (stderr, `tracing`), filtered by `RUST_LOG` or `level`: text
/// on a terminal, JSON lines otherwise (see [`init_logging_as`]).
pub fn init_logging(level: &str) {
    use std::io::IsTerminal;
    init_logging_as(level, !std::io::stderr().is_terminal());
}

/// Install the diagnostic log as JSON lines (`json`, one object per event with its fields
/// at the top level) or as text. Colour codes only when stderr is a terminal: a pipe, a
/// file or a log collector never gets `\x1b[`.
pub fn init_logging_as(level: &str, json: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_ansi(false)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}
