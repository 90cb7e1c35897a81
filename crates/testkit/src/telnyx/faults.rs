//! Fault injection and the request log.

use std::time::Duration;

use serde_json::Value;

use super::routes::{Route, RouteSelector};
use super::state::{ApiError, codes};
use crate::twilio::Params;

/// A fault injected on the routes a [`RouteSelector`] picks.
///
/// `Latency` stays until [`super::TelnyxEmulator::clear_faults`]; the others answer the next
/// `count` matching requests and then disappear. Faults act before authentication, as
/// Telnyx's rate limiter or load balancer would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Delay every matching request by this much before serving it.
    Latency(Duration),
    /// Answer 429 with code 10011 and `x-ratelimit-limit`, `x-ratelimit-remaining: 0` and
    /// `x-ratelimit-reset` (seconds until the window resets, rounded up).
    RateLimit { count: u32, reset: Duration },
    /// Answer 500 (code 10007).
    ServerError { count: u32 },
    /// Answer 503 (code 10007).
    Unavailable { count: u32 },
    /// Accept the request and answer nothing for the emulator's hang time (longer than any
    /// sane client timeout); the request is not served.
    Hang { count: u32 },
}

/// The limit the emulator reports in `x-ratelimit-limit`.
pub const RATE_LIMIT: u32 = 100;

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
            | Fault::Unavailable { count }
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
        /// `x-ratelimit-reset` for a 429.
        reset: Option<Duration>,
    },
}

pub(crate) struct Decision {
    pub latency: Duration,
    pub action: Action,
}

/// Pick the faults for one request: every matching latency adds up; the first matching
/// counted fault with calls left is used up by one.
pub(crate) fn decide(faults: &mut Vec<ActiveFault>, route: Option<Route>) -> Decision {
    let mut latency = Duration::ZERO;
    let mut action = Action::Proceed;
    for f in faults.iter_mut() {
        if !f.selector.matches(route) {
            continue;
        }
        match &f.fault {
            Fault::Latency(d) => latency += *d,
            counted if matches!(action, Action::Proceed) && f.remaining > 0 => {
                action = match counted {
                    Fault::RateLimit { reset, .. } => Action::Fail {
                        error: ApiError::new(
                            429,
                            codes::TOO_MANY_REQUESTS,
                            "Too many requests",
                            "You have exceeded the maximum number of allowed requests.",
                        ),
                        reset: Some(*reset),
                    },
                    Fault::ServerError { .. } => Action::Fail {
                        error: ApiError::new(
                            500,
                            codes::UNEXPECTED,
                            "Unexpected error",
                            "An unexpected error occurred.",
                        ),
                        reset: None,
                    },
                    Fault::Unavailable { .. } => Action::Fail {
                        error: ApiError::new(
                            503,
                            codes::UNEXPECTED,
                            "Service unavailable",
                            "The service is temporarily unavailable.",
                        ),
                        reset: None,
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

/// One request as the emulator received it. The API key is never kept: only which
/// account it belonged to, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Arrival order, from 0.
    pub seq: u64,
    /// `None` for a path or method the emulator does not serve.
    pub route: Option<Route>,
    pub method: String,
    /// The full path, `/v2/…`.
    pub path: String,
    pub query: Params,
    /// The JSON body, if any (`None` also for a body that is not JSON).
    pub body: Option<Value>,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    /// Whether an `Authorization: Bearer …` header came.
    pub bearer: bool,
    /// The account the key belongs to, when it is a known key.
    pub account: Option<String>,
    /// The answer's status; `None` while the request is still being served (or hangs).
    pub status: Option<u16>,
}
