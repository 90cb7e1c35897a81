//! Logs (tracing to stderr, JSON or pretty) and metrics (Prometheus).

use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";
/// LiveKit webhook deliveries by `result`: accepted, duplicate, ignored, refused
/// (signature), malformed, not_configured, error.
pub const LIVEKIT_WEBHOOKS_TOTAL: &str = "livekit_webhooks_total";
/// Background dispatch retries by `outcome`: dispatched, failed, gave_up.
pub const DISPATCH_RETRIES_TOTAL: &str = "agent_dispatch_retries_total";
/// Twilio voice webhook requests by `result`: dialed, rejected, unsigned, malformed,
/// unknown_account, bad_signature, not_configured, error.
pub const VOICE_WEBHOOKS_TOTAL: &str = "voice_webhooks_total";

/// Webhook receipt → LiveKit's answer settling the agent dispatch, by `outcome`:
/// dispatched, recovered, failed, gave_up (`dispatch_timing`).
pub const TIME_TO_DISPATCH: &str = "trunkline_time_to_dispatch_seconds";
/// The part of `TIME_TO_DISPATCH` spent waiting for LiveKit's answers, by `outcome`.
pub const TIME_TO_DISPATCH_LIVEKIT: &str = "trunkline_time_to_dispatch_livekit_seconds";

/// Time-to-dispatch buckets (seconds): fine below 50 ms, where a healthy path lands (the
/// benchmark reads p50/p99 from them), then LiveKit's slow answers and timeouts.
const DISPATCH_BUCKETS: [f64; 24] = [
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.010, 0.012, 0.015, 0.020,
    0.025, 0.030, 0.040, 0.050, 0.075, 0.100, 0.250, 0.500, 1.0, 2.5, 10.0,
];

/// Latency buckets (seconds): the management API waits on carriers, so the tail matters.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Install the global log subscriber. Later calls (tests) keep the first one.
pub fn init_logging(format: LogFormat, filter: &str) {
    let quiet = QuietClientGarbage {
        // An operator who names actix_http in RUST_LOG wants to see everything it says.
        enabled: !filter.contains("actix_http"),
    };
    let filter = EnvFilter::builder()
        .parse(filter)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(quiet).with(filter);
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
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(TIME_TO_DISPATCH.to_owned()),
                        &DISPATCH_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(TIME_TO_DISPATCH_LIVEKIT.to_owned()),
                        &DISPATCH_BUCKETS,
                    )
                })
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
                VOICE_WEBHOOKS_TOTAL,
                "Carrier voice webhook requests (voice-URL mode), by answer"
            );
            metrics::describe_counter!(
                DISPATCH_RETRIES_TOTAL,
                "Agent dispatch attempts made by the background retrier, by outcome"
            );
            metrics::describe_histogram!(
                TIME_TO_DISPATCH,
                metrics::Unit::Seconds,
                "LiveKit webhook receipt to LiveKit's answer settling the agent dispatch, by outcome"
            );
            metrics::describe_histogram!(
                TIME_TO_DISPATCH_LIVEKIT,
                metrics::Unit::Seconds,
                "The part of the time to dispatch spent waiting for LiveKit's answers, by outcome"
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

/// actix-http logs at ERROR what a client did to its own connection: a request that does
/// not parse (`stream error: Request parse error: …`), an oversized head. They are not
/// this server's errors, and anyone can produce them by the thousand; the client got its
/// 400 (or a closed connection). They are dropped unless `RUST_LOG` names `actix_http`.
struct QuietClientGarbage {
    enabled: bool,
}

/// What actix-http's client-caused ERROR messages start with.
const CLIENT_GARBAGE: [&str; 2] = ["stream error", "MAX_BUFFER_SIZE"];

impl<S: Subscriber> Layer<S> for QuietClientGarbage {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        !(self.enabled && is_client_garbage(event))
    }
}

fn is_client_garbage(event: &Event<'_>) -> bool {
    struct Message(Option<String>);
    impl Visit for Message {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "message" {
                self.0 = Some(value.to_owned());
            }
        }
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            if field.name() == "message" {
                self.0 = Some(format!("{value:?}"));
            }
        }
    }
    let meta = event.metadata();
    if *meta.level() != Level::ERROR || !meta.target().starts_with("actix_http::h1") {
        return false;
    }
    let mut message = Message(None);
    event.record(&mut message);
    message
        .0
        .is_some_and(|m| CLIENT_GARBAGE.iter().any(|p| m.starts_with(p)))
}

/// A failure that repeats on every tick while it lasts (the database is down): worth a
/// WARN when it starts, then one at most every `every` with the count, and an INFO when
/// it ends, instead of a WARN per tick.
#[derive(Debug)]
pub struct RepeatedFailure {
    every: Duration,
    /// When the current run of failures started, and when it was last logged.
    since: Option<(Instant, Instant)>,
    /// Failures since the last log line, and in the whole run.
    unlogged: u64,
    total: u64,
}

impl RepeatedFailure {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            since: None,
            unlogged: 0,
            total: 0,
        }
    }

    /// One more failure. `Some(n)`: log it now, with `n` failures since the last line
    /// (1 for the first).
    pub fn failed(&mut self, now: Instant) -> Option<u64> {
        self.total += 1;
        self.unlogged += 1;
        let log = match self.since {
            None => {
                self.since = Some((now, now));
                true
            }
            Some((start, last)) if now.saturating_duration_since(last) >= self.every => {
                self.since = Some((start, now));
                true
            }
            Some(_) => false,
        };
        log.then(|| std::mem::take(&mut self.unlogged))
    }

    /// A success. `Some((failures, lasted))`: a run of failures just ended.
    pub fn succeeded(&mut self, now: Instant) -> Option<(u64, Duration)> {
        let (start, _) = self.since.take()?;
        let total = std::mem::take(&mut self.total);
        self.unlogged = 0;
        Some((total, now.saturating_duration_since(start)))
    }
}

/// Log lines written while a test runs, for assertions on what was logged.
#[cfg(test)]
pub(crate) mod capture {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    pub struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Lines {
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// JSON lines (with the current span's fields) at DEBUG and above, on this thread
    /// until the guard drops.
    pub fn json() -> (Lines, tracing::subscriber::DefaultGuard) {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(lines.clone())
            .finish();
        (lines, tracing::subscriber::set_default(subscriber))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_are_logged_once_a_minute_with_a_count() {
        let mut f = RepeatedFailure::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(f.failed(t0), Some(1));
        for s in 1..60 {
            assert_eq!(f.failed(t0 + Duration::from_secs(s)), None, "{s}");
        }
        assert_eq!(f.failed(t0 + Duration::from_secs(60)), Some(60));
        assert_eq!(f.failed(t0 + Duration::from_secs(61)), None);
        assert_eq!(
            f.succeeded(t0 + Duration::from_secs(62)),
            Some((62, Duration::from_secs(62)))
        );
        assert_eq!(f.succeeded(t0 + Duration::from_secs(63)), None);
        // A new outage is logged at once.
        assert_eq!(f.failed(t0 + Duration::from_secs(64)), Some(1));
    }
}
