//! Adapter configuration: where Telnyx is, how long to wait, how much to retry.
//!
//! The adapter owns its variables: [`TelnyxConfig::from_env`] reads all of them from an
//! environment map and reports every problem at once, each naming its variable, so the
//! server can add them to its own report.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::time::Duration;

use url::Url;

/// The API base, `https://api.telnyx.com/v2` by default (tests point it at an emulator).
pub const API_BASE_ENV: &str = "TRUNKLINE_TELNYX_API_BASE";
/// Longest wait for one whole request, in milliseconds.
pub const TIMEOUT_MS_ENV: &str = "TRUNKLINE_TELNYX_TIMEOUT_MS";
/// How long retries of one call may go on, in milliseconds (0: no retries).
pub const RETRY_BUDGET_MS_ENV: &str = "TRUNKLINE_TELNYX_RETRY_BUDGET_MS";

const MAX_TIMEOUT_MS: u64 = 120_000;
const MAX_RETRY_BUDGET_MS: u64 = 300_000;

/// One problem with one variable (or setting). The message never repeats the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub variable: &'static str,
    pub message: String,
}

/// Everything wrong with a configuration. `Display` is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TelnyxConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl TelnyxConfigError {
    fn single(variable: &'static str, message: impl Into<String>) -> Self {
        Self {
            problems: vec![ConfigProblem {
                variable,
                message: message.into(),
            }],
        }
    }

    /// Whether `variable` is named by some problem.
    pub fn names(&self, variable: &str) -> bool {
        self.problems.iter().any(|p| p.variable == variable)
    }
}

impl fmt::Display for TelnyxConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid Telnyx configuration: ")?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", p.variable, p.message)?;
        }
        Ok(())
    }
}

/// How the adapter reaches Telnyx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelnyxConfig {
    /// `https://api.telnyx.com/v2` in production; paths are appended to it.
    pub api_base: Url,
    /// Longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest wait for one whole request, connection to last byte.
    pub request_timeout: Duration,
    /// Retries after the first attempt, for the failures the operation's idempotency allows.
    pub max_retries: u32,
    /// No retry starts whose wait would end later than this after the first attempt began,
    /// so one call never takes much longer than this plus one request.
    pub retry_budget: Duration,
    /// First backoff delay; it doubles per retry, up to `backoff_max`, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// `page[size]` for the lists the adapter reads whole (connections, FQDNs): 1 to 250.
    /// Only tests want it small.
    pub list_page_size: u32,
}

impl TelnyxConfig {
    pub const PUBLIC_API_BASE: &'static str = "https://api.telnyx.com/v2";
    pub const DEFAULT_TIMEOUT_MS: u64 = 15_000;
    pub const DEFAULT_RETRY_BUDGET_MS: u64 = 20_000;
    /// Telnyx's largest `page[size]`.
    pub const MAX_PAGE_SIZE: u32 = 250;

    /// Telnyx's public API and production timeouts.
    pub fn telnyx_public() -> Self {
        Self {
            api_base: Url::parse(Self::PUBLIC_API_BASE).unwrap_or_else(|_| unreachable!()),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_millis(Self::DEFAULT_TIMEOUT_MS),
            max_retries: 3,
            retry_budget: Duration::from_millis(Self::DEFAULT_RETRY_BUDGET_MS),
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(4),
            list_page_size: Self::MAX_PAGE_SIZE,
        }
    }

    /// Production defaults with another base (an emulator, a proxy).
    pub fn with_base(api_base: &str) -> Result<Self, TelnyxConfigError> {
        let api_base =
            parse_base(api_base).map_err(|m| TelnyxConfigError::single(API_BASE_ENV, m))?;
        Ok(Self {
            api_base,
            ..Self::telnyx_public()
        })
    }

    /// Read [`API_BASE_ENV`], [`TIMEOUT_MS_ENV`] and [`RETRY_BUDGET_MS_ENV`] from an
    /// environment map. Unset or blank means the default. Every problem is reported.
    pub fn from_env<S: BuildHasher>(
        env: &HashMap<String, String, S>,
    ) -> Result<Self, TelnyxConfigError> {
        Self::from_lookup(|name| env.get(name).cloned())
    }

    /// [`Self::from_env`] over any lookup (the server passes its own environment snapshot).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, TelnyxConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut problems = Vec::new();
        let mut config = Self::telnyx_public();
        if let Some(raw) = get(API_BASE_ENV) {
            match parse_base(&raw) {
                Ok(url) => config.api_base = url,
                Err(message) => problems.push(ConfigProblem {
                    variable: API_BASE_ENV,
                    message,
                }),
            }
        }
        let mut millis = |name: &'static str, range: std::ops::RangeInclusive<u64>| {
            let raw = get(name)?;
            match raw.parse::<u64>() {
                Ok(v) if range.contains(&v) => Some(Duration::from_millis(v)),
                _ => {
                    problems.push(ConfigProblem {
                        variable: name,
                        message: format!(
                            "must be a whole number of milliseconds from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    });
                    None
                }
            }
        };
        if let Some(t) = millis(TIMEOUT_MS_ENV, 1..=MAX_TIMEOUT_MS) {
            config.request_timeout = t;
        }
        if let Some(b) = millis(RETRY_BUDGET_MS_ENV, 0..=MAX_RETRY_BUDGET_MS) {
            config.retry_budget = b;
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(TelnyxConfigError { problems })
        }
    }

    /// Check a configuration built in code; every problem at once.
    pub fn validate(&self) -> Result<(), TelnyxConfigError> {
        let mut problems = Vec::new();
        let mut push = |variable: &'static str, message: &str| {
            problems.push(ConfigProblem {
                variable,
                message: message.to_owned(),
            });
        };
        if let Err(m) = check_base(&self.api_base) {
            push(API_BASE_ENV, &m);
        }
        if !(1..=Self::MAX_PAGE_SIZE).contains(&self.list_page_size) {
            push("list_page_size", "must be 1 to 250");
        }
        if self.request_timeout.is_zero() {
            push(TIMEOUT_MS_ENV, "must be more than zero");
        }
        if self.connect_timeout.is_zero() {
            push("connect_timeout", "must be more than zero");
        }
        if self.backoff_max < self.backoff_base {
            push("backoff_max", "must not be below backoff_base");
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(TelnyxConfigError { problems })
        }
    }
}

impl Default for TelnyxConfig {
    fn default() -> Self {
        Self::telnyx_public()
    }
}

fn parse_base(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("not a URL: {e}"))?;
    check_base(&url)?;
    Ok(url)
}

fn check_base(url: &Url) -> Result<(), String> {
    if !matches!(url.scheme(), "https" | "http") {
        return Err("must be an http or https URL".to_owned());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".to_owned());
    }
    // Credentials in the base would be sent alongside the customer's key.
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_without_any_variable() {
        let c = TelnyxConfig::from_env(&env(&[])).unwrap();
        assert_eq!(c, TelnyxConfig::default());
        assert_eq!(c.api_base.as_str(), "https://api.telnyx.com/v2");
        assert_eq!(c.request_timeout, Duration::from_secs(15));
        assert_eq!(c.retry_budget, Duration::from_secs(20));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn variables_override_and_blank_means_default() {
        let c = TelnyxConfig::from_env(&env(&[
            (API_BASE_ENV, " http://127.0.0.1:7403/v2 "),
            (TIMEOUT_MS_ENV, "2500"),
            (RETRY_BUDGET_MS_ENV, "  "),
        ]))
        .unwrap();
        assert_eq!(c.api_base.as_str(), "http://127.0.0.1:7403/v2");
        assert_eq!(c.request_timeout, Duration::from_millis(2500));
        assert_eq!(c.retry_budget, Duration::from_secs(20));
        let none = TelnyxConfig::from_env(&env(&[(RETRY_BUDGET_MS_ENV, "0")])).unwrap();
        assert_eq!(none.retry_budget, Duration::ZERO);
    }

    #[test]
    fn every_problem_is_reported_at_once_without_the_values() {
        let err = TelnyxConfig::from_env(&env(&[
            (API_BASE_ENV, "https://user:hunter2@api.telnyx.com/v2"),
            (TIMEOUT_MS_ENV, "0"),
            (RETRY_BUDGET_MS_ENV, "forever"),
        ]))
        .unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
        for v in [API_BASE_ENV, TIMEOUT_MS_ENV, RETRY_BUDGET_MS_ENV] {
            assert!(err.names(v), "{v} in {err}");
        }
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn bad_bases_are_refused() {
        for bad in [
            "ftp://api.telnyx.com/v2",
            "not a url",
            "https://api.telnyx.com/v2?x=1",
            "https://api.telnyx.com/v2#f",
        ] {
            let err = TelnyxConfig::with_base(bad).expect_err(bad);
            assert!(err.names(API_BASE_ENV), "{bad}: {err}");
        }
        for bad in ["120001", "-1", "1.5"] {
            assert!(
                TelnyxConfig::from_env(&env(&[(TIMEOUT_MS_ENV, bad)])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn validate_checks_what_code_can_get_wrong() {
        let c = TelnyxConfig {
            list_page_size: 251,
            request_timeout: Duration::ZERO,
            ..TelnyxConfig::default()
        };
        let err = c.validate().unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
    }
}
