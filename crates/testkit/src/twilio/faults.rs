//! Fault injection and the request log.

use std::time::Duration;

use super::routes::{Host, Params, Route, RouteSelector};
use super::state::{ApiError, codes};

/// A fault injected on the routes a [`RouteSelector`] picks.
///
/// `Latency` stays until [`super::TwilioEmulator::clear_faults`]; the others answer the next
/// `count` matching requests and then disappear. Faults act before authentication, as a
/// rate limiter or load balancer in front of Twilio would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Delay every matching request by this much before serving it.
    Latency(Duration),
    /// Answer 429 with Twilio code 20429 and a `Retry-After` header (whole seconds,
    /// rounded up).
    RateLimit { count: u32, retry_after: Duration },
    /// Answer 500 with Twilio code 20500.
    ServerError { count: u32 },
    /// Answer 503 with Twilio code 20503, with `Retry-After` when given.
    Unavailable {
        count: u32,
        retry_after: Option<Duration>,
    },
    /// Accept the request and answer nothing for the emulator's hang time (longer than any
    /// sane client timeout); the request is not served.
    Hang { count: u32 },
}

pub(crate) struct ActiveFault {
    pub selector: RouteSelector,
    pub fault: Fault,
    pub remaining: u32,
}

impl ActiveFault {
    pub fn new(selector: RouteSelector, fault: Fault) -> Self {
        let remaining = match &fault {
            Fault::Latency(_) => u32::MAX,
            Fault::RateLimit { count, .. }
            | Fault::ServerError { count }
            | Fault::Unavailable { count, .. }
            | Fault::Hang { count } => *count,
        };
        Self {
            selector,
            fault,
            remaining,
        }
    }
}

/// What to do with one request.
pub(crate) enum Action {
    Proceed,
    Hang,
    Fail {
        error: ApiError,
        retry_after: Option<Duration>,
    },
}

pub(crate) struct Decision {
    pub latency: Duration,
    pub action: Action,
}

/// Pick the faults for one request: every matching latency adds up; the first matching
/// counted fault with calls left is used up by one.
pub(crate) fn decide(faults: &mut Vec<ActiveFault>, host: Host, route: Option<Route>) -> Decision {
    let mut latency = Duration::ZERO;
    let mut action = Action::Proceed;
    for f in faults.iter_mut() {
        if !f.selector.matches(host, route) {
            continue;
        }
        match &f.fault {
            Fault::Latency(d) => latency += *d,
            counted if matches!(action, Action::Proceed) && f.remaining > 0 => {
                action = match counted {
                    Fault::RateLimit { retry_after, .. } => Action::Fail {
                        error: ApiError::new(429, codes::TOO_MANY_REQUESTS, "Too Many Requests"),
                        retry_after: Some(*retry_after),
                    },
                    Fault::ServerError { .. } => Action::Fail {
                        error: ApiError::new(500, codes::INTERNAL, "Internal Server Error"),
                        retry_after: None,
                    },
                    Fault::Unavailable { retry_after, .. } => Action::Fail {
                        error: ApiError::new(503, codes::UNAVAILABLE, "Service Unavailable"),
                        retry_after: *retry_after,
                    },
                    Fault::Hang { .. } => Action::Hang,
                    Fault::Latency(_) => Action::Proceed,
                };
                f.remaining -= 1;
            }
            _ => {}
        }
    }
    faults.retain(|f| f.remaining > 0);
    Decision { latency, action }
}

/// One request as the emulator received it. Credentials are never kept: only the Basic
/// auth user name (an `AC…` or `SK…` SID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Arrival order, from 0.
    pub seq: u64,
    pub host: Host,
    /// `None` for a path or method the emulator does not serve.
    pub route: Option<Route>,
    pub method: String,
    pub path: String,
    pub query: Params,
    /// The `application/x-www-form-urlencoded` body, if any.
    pub form: Params,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    pub auth_user: Option<String>,
    /// The answer's status; `None` while the request is still being served (or hangs).
    pub status: Option<u16>,
}
