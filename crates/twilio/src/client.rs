//! HTTP to Twilio: Basic auth, timeouts, bounded retries, error classification.

use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use trunkline_core::ports::ProviderError;
use url::Url;

use crate::config::{TwilioConfig, TwilioConfigError};
use crate::credentials::Auth;
use crate::error::{Resource, TransportFailure, TwilioErrorBody, classify, transport};
use crate::ops::{Idempotency, TwilioHost, TwilioOperation};

/// `trunkline/<version>`: Twilio support can tell our traffic apart.
pub const USER_AGENT: &str = concat!(
    "trunkline/",
    env!("CARGO_PKG_VERSION"),
    " (trunkline-twilio)"
);

/// One request to send.
pub(crate) struct Call<'a> {
    pub op: TwilioOperation,
    pub resource: Resource,
    /// Path ids, in template order.
    pub ids: &'a [&'a str],
    pub query: Vec<(String, String)>,
    pub form: Vec<(&'static str, String)>,
}

impl<'a> Call<'a> {
    pub fn new(op: TwilioOperation, resource: Resource, ids: &'a [&'a str]) -> Self {
        Self {
            op,
            resource,
            ids,
            query: Vec::new(),
            form: Vec::new(),
        }
    }

    #[must_use]
    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_owned(), value.into()));
        self
    }

    #[must_use]
    pub fn form(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.form.push((name, value.into()));
        self
    }
}

/// One attempt's failure, before classification.
enum Failure {
    Status {
        status: u16,
        body: TwilioErrorBody,
        retry_after: Option<Duration>,
    },
    Transport(TransportFailure),
}

impl Failure {
    fn retryable(&self, idempotency: Idempotency) -> bool {
        let repeatable = idempotency != Idempotency::Create;
        match self {
            // Twilio refused before doing anything: safe even for creates.
            Self::Status { status: 429, .. } | Self::Transport(TransportFailure::Connect) => true,
            Self::Status { status: 503, .. } | Self::Transport(TransportFailure::Timeout) => {
                repeatable
            }
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            Self::Transport(_) => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Status { status, body, .. } => match body.code {
                Some(code) => format!("HTTP {status} (Twilio {code})"),
                None => format!("HTTP {status}"),
            },
            Self::Transport(t) => format!("{t:?}"),
        }
    }

    fn into_error(self, host: TwilioHost, resource: Resource) -> ProviderError {
        match self {
            Self::Status {
                status,
                body,
                retry_after,
            } => classify(host, resource, status, &body, retry_after),
            Self::Transport(t) => transport(t),
        }
    }
}

/// `Retry-After`: delay-seconds or an HTTP date.
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
        .or(Some(Duration::ZERO))
}

/// The HTTP side of the adapter.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    config: TwilioConfig,
}

impl Client {
    pub fn new(config: TwilioConfig) -> Result<Self, TwilioConfigError> {
        config.validate()?;
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // A redirect could carry the Authorization header somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| TwilioConfigError::Client(e.to_string()))?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &TwilioConfig {
        &self.config
    }

    fn base(&self, host: TwilioHost) -> &Url {
        match host {
            TwilioHost::Api => &self.config.api_base,
            TwilioHost::Trunking => &self.config.trunking_base,
        }
    }

    /// The URL for a path on a host, under any path prefix the base has.
    fn url(&self, host: TwilioHost, path: &str) -> Url {
        let mut url = self.base(host).clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{prefix}{path}"));
        url
    }

    /// Send a call, retrying what [`Failure::retryable`] allows within the configured
    /// bounds, and decode a 2xx JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        auth: &Auth<'_>,
        call: &Call<'_>,
    ) -> Result<T, ProviderError> {
        let body = self.send(auth, call).await?;
        serde_json::from_slice(&body).map_err(|e| {
            tracing::warn!(op = %call.op, error = %e, "unreadable answer from Twilio");
            transport(TransportFailure::BadResponse)
        })
    }

    /// Send a call whose answer has no body we need (deletes).
    pub async fn empty(&self, auth: &Auth<'_>, call: &Call<'_>) -> Result<(), ProviderError> {
        self.send(auth, call).await.map(drop)
    }

    async fn send(&self, auth: &Auth<'_>, call: &Call<'_>) -> Result<Vec<u8>, ProviderError> {
        let info = call.op.info();
        let url = self.url(info.host, &call.op.path(call.ids));
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
            let failure = match self.attempt(auth, call, &url).await {
                Ok(body) => {
                    tracing::debug!(
                        op = %call.op,
                        attempt,
                        elapsed_ms = elapsed_ms(sent),
                        "twilio request succeeded"
                    );
                    return Ok(body);
                }
                Err(f) => f,
            };
            let next = if failure.retryable(info.idempotency) {
                backoff
                    .next()
                    .map(|d| failure.retry_after().map_or(d, |ra| ra.max(d)))
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
                    "twilio request failed"
                );
                return Err(failure.into_error(info.host, call.resource));
            };
            tracing::warn!(
                op = %call.op,
                attempt,
                outcome = %failure.describe(),
                retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "twilio request failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        auth: &Auth<'_>,
        call: &Call<'_>,
        url: &Url,
    ) -> Result<Vec<u8>, Failure> {
        let info = call.op.info();
        let method = Method::from_bytes(info.method.as_bytes()).unwrap_or(Method::GET);
        // reqwest marks the Authorization header sensitive: it never shows in Debug output.
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .basic_auth(auth.user(), Some(auth.secret.expose_secret()))
            .header(ACCEPT, "application/json");
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if method == Method::POST {
            request = request.form(&call.form);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Transport(kind(&e)))?;
        let status = response.status();
        let retry_after = parse_retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| Failure::Transport(kind(&e)))?;
        if status.is_success() {
            return Ok(body.to_vec());
        }
        Err(Failure::Status {
            status: status.as_u16(),
            body: TwilioErrorBody::parse(&body),
            retry_after: retry_after.filter(|_| {
                matches!(
                    status,
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                )
            }),
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
    } else {
        TransportFailure::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        assert_eq!(
            parse_retry_after(&headers("7")),
            Some(Duration::from_secs(7))
        );
        assert_eq!(parse_retry_after(&headers(" 0 ")), Some(Duration::ZERO));
        let at = chrono::Utc::now() + chrono::Duration::seconds(30);
        let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let d = parse_retry_after(&headers(&date)).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(
            parse_retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after(&headers("soon")), None);
        assert_eq!(parse_retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn only_what_twilio_certainly_did_not_do_is_retried_for_creates() {
        use Idempotency::{Create, Idempotent, Read};
        let status = |s: u16| Failure::Status {
            status: s,
            body: TwilioErrorBody::default(),
            retry_after: None,
        };
        for idem in [Read, Idempotent, Create] {
            assert!(status(429).retryable(idem));
            assert!(Failure::Transport(TransportFailure::Connect).retryable(idem));
            assert!(!status(500).retryable(idem));
            assert!(!status(400).retryable(idem));
            assert!(!Failure::Transport(TransportFailure::BadResponse).retryable(idem));
        }
        for idem in [Read, Idempotent] {
            assert!(status(503).retryable(idem));
            assert!(Failure::Transport(TransportFailure::Timeout).retryable(idem));
        }
        assert!(!status(503).retryable(Create));
        assert!(!Failure::Transport(TransportFailure::Timeout).retryable(Create));
    }
}
