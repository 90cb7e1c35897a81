//! Logs (tracing to stderr, JSON or pretty) and metrics (Prometheus).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";
/// LiveKit webhook deliveries by `result`: accepted, duplicate, ignored, refused
/// (signature), malformed, not_configured, error.
pub const LIVEKIT_WEBHOOKS_TOTAL: &str = "livekit_webhooks_total";
/// Background dispatch retries by `outcome`: dispatched, failed, gave_up.
pub const DISPATCH_RETRIES_TOTAL: &str = "agent_dispatch_retries_total";

/// Latency buckets (seconds): the management API waits on carriers, so the tail matters.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Install the global log subscriber. Later calls (tests) keep the first one.
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = EnvFilter::builder()
        .parse(filter)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    // Already installed: a test process initialises more than once.
    let _ = result;
}

/// The Prometheus recorder. The `metrics` facade is process-global by design (every
/// crate's `counter!` lands in it), so the recorder is installed once per process and
/// every app shares its handle.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(HTTP_REQUEST_DURATION.to_owned()),
                    &LATENCY_BUCKETS,
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics stays empty");
            }
            metrics::describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests answered");
            metrics::describe_counter!(
                LIVEKIT_WEBHOOKS_TOTAL,
                "LiveKit webhook deliveries, by what was done with them"
            );
            metrics::describe_counter!(
                DISPATCH_RETRIES_TOTAL,
                "Agent dispatch attempts made by the background retrier, by outcome"
            );
            metrics::describe_histogram!(
                HTTP_REQUEST_DURATION,
                metrics::Unit::Seconds,
                "HTTP request latency, from routing to the last header"
            );
            handle
        })
        .clone()
}
