//! HTTP to Telnyx: bearer auth, timeouts, bounded retries, error classification.

use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::header::{ACCEPT, HeaderMap};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;
use trunkline_core::ports::ProviderError;
use url::Url;

use crate::config::{ConfigProblem, TelnyxConfig, TelnyxConfigError};
use crate::error::{ErrorBody, Resource, TransportFailure, classify, transport};
use crate::ops::{Idempotency, TelnyxOperation};

/// `trunkline/<version>`: Telnyx support can tell our traffic apart.
pub const USER_AGENT: &str = concat!(
    "trunkline/",
    env!("CARGO_PKG_VERSION"),
    " (trunkline-telnyx)"
);

/// One request to send.
pub(crate) struct Call<'a> {
    pub op: TelnyxOperation,
    pub resource: Resource,
    pub id: Option<&'a str>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
}

impl<'a> Call<'a> {
    pub fn new(op: TelnyxOperation, resource: Resource, id: Option<&'a str>) -> Self {
        Self {
            op,
            resource,
            id,
            query: Vec::new(),
            body: None,
        }
    }

    #[must_use]
    pub fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    #[must_use]
    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// One attempt's failure, before classification.
pub(crate) enum Failure {
    Status {
        status: u16,
        body: ErrorBody,
        /// `x-ratelimit-reset` of a 429: seconds until the window resets.
        reset: Option<Duration>,
    },
    Transport(TransportFailure),
}

impl Failure {
    /// Only operations that are safe to repeat are retried, and only on failures that may
    /// pass: rate limits, Telnyx's 5xx, timeouts and lost connections.
    fn retryable(&self, idempotency: Idempotency) -> bool {
        if idempotency == Idempotency::Create {
            return false;
        }
        match self {
            Self::Status { status, .. } => *status == 429 || (500..=599).contains(status),
            Self::Transport(t) => *t != TransportFailure::BadResponse,
        }
    }

    fn reset(&self) -> Option<Duration> {
        match self {
            Self::Status { reset, .. } => *reset,
            Self::Transport(_) => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Status { status, body, .. } => match body.code() {
                Some(code) => format!("HTTP {status} (Telnyx {code})"),
                None => format!("HTTP {status}"),
            },
            Self::Transport(t) => format!("{t:?}"),
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Transport(_) => None,
        }
    }

    pub fn into_error(self, resource: Resource) -> ProviderError {
        match self {
            Self::Status {
                status,
                body,
                reset,
            } => classify(resource, status, &body, reset),
            Self::Transport(t) => transport(t),
        }
    }
}

/// `x-ratelimit-reset`: whole seconds until the limit resets (Telnyx's documented meaning).
fn parse_reset(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim();
    raw.parse::<u64>().ok().map(Duration::from_secs)
}

/// The HTTP side of the adapter.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    http: reqwest::Client,
    config: TelnyxConfig,
}

impl Http {
    pub fn new(config: TelnyxConfig) -> Result<Self, TelnyxConfigError> {
        config.validate()?;
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // A redirect could carry the Authorization header somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| TelnyxConfigError {
                problems: vec![ConfigProblem {
                    variable: "http client",
                    message: e.to_string(),
                }],
            })?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &TelnyxConfig {
        &self.config
    }

    /// The URL for a path, under the base's own path (`/v2`).
    fn url(&self, path: &str) -> Url {
        let mut url = self.config.api_base.clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{prefix}{path}"));
        url
    }

    /// Send, retry what the operation allows, and decode a 2xx JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        key: &SecretString,
        call: &Call<'_>,
    ) -> Result<T, ProviderError> {
        self.json_or_failure(key, call)
            .await
            .map_err(|f| f.into_error(call.resource))
    }

    /// Like [`Self::json`], but hands back the unclassified failure, for callers that
    /// treat one status specially (a 404 on delete is success).
    pub async fn json_or_failure<T: DeserializeOwned>(
        &self,
        key: &SecretString,
        call: &Call<'_>,
    ) -> Result<T, Failure> {
        let body = self.send(key, call).await?;
        serde_json::from_slice(&body).map_err(|e| {
            tracing::warn!(op = %call.op, error = %e, "unreadable answer from Telnyx");
            Failure::Transport(TransportFailure::BadResponse)
        })
    }

    async fn send(&self, key: &SecretString, call: &Call<'_>) -> Result<Vec<u8>, Failure> {
        let info = call.op.info();
        let url = self.url(&call.op.path(call.id));
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.backoff_base)
            .with_max_delay(self.config.backoff_max)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.config.max_retries as usize)
            .build();
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let sent = Instant::now();
            let failure = match self.attempt(key, call, &url).await {
                Ok(body) => {
                    tracing::debug!(
                        op = %call.op,
                        attempt,
                        elapsed_ms = elapsed_ms(sent),
                        "telnyx request succeeded"
                    );
                    return Ok(body);
                }
                Err(f) => f,
            };
            let next = if failure.retryable(info.idempotency) {
                // Waiting less than Telnyx's reset would only meet the limit again.
                backoff
                    .next()
                    .map(|d| failure.reset().map_or(d, |r| r.max(d)))
            } else {
                None
            };
            let wait = next.filter(|d| started.elapsed() + *d <= self.config.retry_budget);
            let Some(wait) = wait else {
                tracing::info!(
                    op = %call.op,
                    attempt,
                    outcome = %failure.describe(),
                    elapsed_ms = elapsed_ms(started),
                    "telnyx request failed"
                );
                return Err(failure);
            };
            tracing::warn!(
                op = %call.op,
                attempt,
                outcome = %failure.describe(),
                retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "telnyx request failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        key: &SecretString,
        call: &Call<'_>,
        url: &Url,
    ) -> Result<Vec<u8>, Failure> {
        let info = call.op.info();
        let method = Method::from_bytes(info.method.as_bytes()).unwrap_or(Method::GET);
        // reqwest marks the Authorization header sensitive: it never shows in Debug output.
        let mut request = self
            .http
            .request(method, url.clone())
            .bearer_auth(key.expose_secret())
            .header(ACCEPT, "application/json");
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Transport(kind(&e)))?;
        let status = response.status();
        let reset = parse_reset(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| Failure::Transport(kind(&e)))?;
        if status.is_success() {
            return Ok(body.to_vec());
        }
        Err(Failure::Status {
            status: status.as_u16(),
            body: ErrorBody::parse(&body),
            reset: reset.filter(|_| status == StatusCode::TOO_MANY_REQUESTS),
        })
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn kind(e: &reqwest::Error) -> TransportFailure {
    if e.is_timeout() {
        TransportFailure::Timeout
    } else if e.is_connect() {
        TransportFailure::Connect
    } else if e.is_decode() {
        TransportFailure::BadResponse
    } else {
        TransportFailure::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn reset_is_whole_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_reset(&h), None);
        h.insert("x-ratelimit-reset", HeaderValue::from_static(" 3 "));
        assert_eq!(parse_reset(&h), Some(Duration::from_secs(3)));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("soon"));
        assert_eq!(parse_reset(&h), None);
    }

    #[test]
    fn creates_are_never_retried_and_client_errors_never() {
        use Idempotency::{Create, Idempotent, Read};
        let status = |s: u16| Failure::Status {
            status: s,
            body: ErrorBody::default(),
            reset: None,
        };
        for s in [429, 500, 502, 503, 504] {
            assert!(status(s).retryable(Read), "{s}");
            assert!(status(s).retryable(Idempotent), "{s}");
            assert!(!status(s).retryable(Create), "{s}");
        }
        for s in [400, 401, 403, 404, 422] {
            assert!(!status(s).retryable(Read), "{s}");
        }
        for t in [
            TransportFailure::Timeout,
            TransportFailure::Connect,
            TransportFailure::Other,
        ] {
            assert!(Failure::Transport(t).retryable(Idempotent));
            assert!(!Failure::Transport(t).retryable(Create));
        }
        assert!(!Failure::Transport(TransportFailure::BadResponse).retryable(Read));
    }
}
