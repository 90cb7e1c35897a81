//! Adapter configuration: where Twilio is, how long to wait, how much to retry.
//!
//! The adapter owns its variables: [`TwilioConfig::from_lookup`] reads all of them and
//! reports every problem at once, each naming its variable, so the server can add them to
//! its own report.

use std::time::Duration;

use url::Url;

/// The 2010 API base, `https://api.twilio.com` by default (tests point it at an emulator).
pub const API_BASE_ENV: &str = "TRUNKLINE_TWILIO_API_BASE";
/// The Trunking v1 base, `https://trunking.twilio.com` by default.
pub const TRUNKING_BASE_ENV: &str = "TRUNKLINE_TWILIO_TRUNKING_BASE";
/// Longest wait for one whole request, in milliseconds.
pub const TIMEOUT_MS_ENV: &str = "TRUNKLINE_TWILIO_TIMEOUT_MS";
/// How long retries of one call may go on, in milliseconds (0: no retries that wait).
pub const RETRY_BUDGET_MS_ENV: &str = "TRUNKLINE_TWILIO_RETRY_BUDGET_MS";

/// Longer than this, a request would outlive any client waiting for connect to answer.
const MAX_TIMEOUT_MS: u64 = 120_000;
const MAX_RETRY_BUDGET_MS: u64 = 300_000;

/// One problem with one variable (or setting). The message never repeats the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub variable: &'static str,
    pub message: String,
}

/// A configuration the adapter cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwilioConfigError {
    /// Every problem found, each naming its variable. `Display` is one line.
    #[error("invalid Twilio configuration: {}", join(.problems))]
    Invalid { problems: Vec<ConfigProblem> },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl TwilioConfigError {
    /// The problems, each naming its variable (none for [`Self::Client`]).
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            Self::Invalid { problems } => problems,
            Self::Client(_) => &[],
        }
    }

    /// Whether `variable` is named by some problem.
    pub fn names(&self, variable: &str) -> bool {
        self.problems().iter().any(|p| p.variable == variable)
    }
}

fn join(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.variable, p.message))
        .collect::<Vec<_>>()
        .join("; ")
}

fn result(problems: Vec<ConfigProblem>) -> Result<(), TwilioConfigError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(TwilioConfigError::Invalid { problems })
    }
}

/// How the adapter reaches Twilio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioConfig {
    /// The 2010 API, `https://api.twilio.com` in production.
    pub api_base: Url,
    /// Elastic SIP Trunking v1, `https://trunking.twilio.com` in production.
    pub trunking_base: Url,
    /// Longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest wait for one whole request, connection to last byte.
    pub request_timeout: Duration,
    /// Retries after the first attempt, for the failures [`crate::Idempotency`] allows.
    pub max_retries: u32,
    /// No retry starts whose wait would end later than this after the first attempt began,
    /// so one call never takes much longer than this plus one request.
    pub retry_budget: Duration,
    /// First backoff delay; it doubles per retry, up to `backoff_max`, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// `PageSize` for the lists the adapter reads whole (trunks, origination URLs, trunk
    /// numbers): 1 to 1000. Only tests want it small.
    pub list_page_size: u32,
}

impl TwilioConfig {
    pub const PUBLIC_API_BASE: &'static str = "https://api.twilio.com";
    pub const PUBLIC_TRUNKING_BASE: &'static str = "https://trunking.twilio.com";
    pub const DEFAULT_TIMEOUT_MS: u64 = 15_000;
    pub const DEFAULT_RETRY_BUDGET_MS: u64 = 20_000;
    pub const MAX_PAGE_SIZE: u32 = 1000;

    /// Twilio's public hosts and production timeouts.
    pub fn twilio_public() -> Self {
        Self {
            api_base: Url::parse(Self::PUBLIC_API_BASE).unwrap_or_else(|_| unreachable!()),
            trunking_base: Url::parse(Self::PUBLIC_TRUNKING_BASE)
                .unwrap_or_else(|_| unreachable!()),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_millis(Self::DEFAULT_TIMEOUT_MS),
            max_retries: 3,
            retry_budget: Duration::from_millis(Self::DEFAULT_RETRY_BUDGET_MS),
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(4),
            list_page_size: Self::MAX_PAGE_SIZE,
        }
    }

    /// Production defaults with other hosts (an emulator, a proxy). Both are checked.
    pub fn with_bases(api_base: &str, trunking_base: &str) -> Result<Self, TwilioConfigError> {
        let mut problems = Vec::new();
        let mut config = Self::twilio_public();
        for (variable, raw, base) in [
            (API_BASE_ENV, api_base, &mut config.api_base),
            (TRUNKING_BASE_ENV, trunking_base, &mut config.trunking_base),
        ] {
            match parse_base(raw) {
                Ok(url) => *base = url,
                Err(message) => problems.push(ConfigProblem { variable, message }),
            }
        }
        result(problems).map(|()| config)
    }

    /// Read [`API_BASE_ENV`], [`TRUNKING_BASE_ENV`], [`TIMEOUT_MS_ENV`] and
    /// [`RETRY_BUDGET_MS_ENV`] through `lookup` (the server passes its environment).
    /// Unset or blank means the default. Every problem is reported.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, TwilioConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let (api_base, trunking_base) = (get(API_BASE_ENV), get(TRUNKING_BASE_ENV));
        let (mut config, mut problems) = match Self::with_bases(
            api_base.as_deref().unwrap_or(Self::PUBLIC_API_BASE),
            trunking_base
                .as_deref()
                .unwrap_or(Self::PUBLIC_TRUNKING_BASE),
        ) {
            Ok(config) => (config, Vec::new()),
            Err(e) => (Self::twilio_public(), e.problems().to_vec()),
        };
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
            // Connecting is part of the request: it can never be allowed longer than the whole.
            config.connect_timeout = config.connect_timeout.min(t);
        }
        if let Some(b) = millis(RETRY_BUDGET_MS_ENV, 0..=MAX_RETRY_BUDGET_MS) {
            config.retry_budget = b;
        }
        result(problems).map(|()| config)
    }

    /// Check a configuration built in code; every problem at once.
    pub fn validate(&self) -> Result<(), TwilioConfigError> {
        let mut problems = Vec::new();
        let mut push = |variable: &'static str, message: &str| {
            problems.push(ConfigProblem {
                variable,
                message: message.to_owned(),
            });
        };
        for (variable, base) in [
            (API_BASE_ENV, &self.api_base),
            (TRUNKING_BASE_ENV, &self.trunking_base),
        ] {
            if let Err(m) = check_base(base) {
                push(variable, &m);
            }
        }
        if !(1..=Self::MAX_PAGE_SIZE).contains(&self.list_page_size) {
            push("list_page_size", "must be 1 to 1000");
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
        result(problems)
    }
}

impl Default for TwilioConfig {
    fn default() -> Self {
        Self::twilio_public()
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
    // Credentials in the base would be sent alongside (or instead of) the customer's.
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

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn defaults_without_any_variable() {
        let c = TwilioConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(c, TwilioConfig::default());
        assert_eq!(c.api_base.as_str(), "https://api.twilio.com/");
        assert_eq!(c.trunking_base.as_str(), "https://trunking.twilio.com/");
        assert_eq!(c.request_timeout, Duration::from_secs(15));
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.retry_budget, Duration::from_secs(20));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn variables_override_and_blank_means_default() {
        let c = TwilioConfig::from_lookup(lookup(&[
            (API_BASE_ENV, " http://127.0.0.1:1234 "),
            (TRUNKING_BASE_ENV, "http://127.0.0.1:1235"),
            (TIMEOUT_MS_ENV, "750"),
            (RETRY_BUDGET_MS_ENV, "0"),
        ]))
        .unwrap();
        assert_eq!(c.api_base.as_str(), "http://127.0.0.1:1234/");
        assert_eq!(c.trunking_base.as_str(), "http://127.0.0.1:1235/");
        assert_eq!(c.request_timeout, Duration::from_millis(750));
        assert_eq!(c.retry_budget, Duration::ZERO);
        // Connecting is part of the request, so it is never allowed longer.
        assert_eq!(c.connect_timeout, Duration::from_millis(750));

        let c = TwilioConfig::from_lookup(lookup(&[
            (TRUNKING_BASE_ENV, "  "),
            (TIMEOUT_MS_ENV, "30000"),
            (RETRY_BUDGET_MS_ENV, ""),
        ]))
        .unwrap();
        assert_eq!(c.trunking_base.as_str(), "https://trunking.twilio.com/");
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.retry_budget, Duration::from_secs(20));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: &[(&str, &str)] = &[
            (API_BASE_ENV, "ftp://x"),
            (API_BASE_ENV, "not a url"),
            (API_BASE_ENV, "https://api.twilio.com/?x=1"),
            (TRUNKING_BASE_ENV, "not a url"),
            (TRUNKING_BASE_ENV, "https://trunking.twilio.com/#f"),
            (TIMEOUT_MS_ENV, "0"),
            (TIMEOUT_MS_ENV, "120001"),
            (TIMEOUT_MS_ENV, "1s"),
            (RETRY_BUDGET_MS_ENV, "-5"),
            (RETRY_BUDGET_MS_ENV, "300001"),
        ];
        for (var, value) in cases {
            let err = TwilioConfig::from_lookup(lookup(&[(var, value)])).unwrap_err();
            assert_eq!(err.problems().len(), 1, "{var}={value}: {err}");
            assert!(err.names(var), "{var}={value}: {err}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once_without_the_values() {
        let err = TwilioConfig::from_lookup(lookup(&[
            (API_BASE_ENV, "https://user:hunter2@api.twilio.com"),
            (TRUNKING_BASE_ENV, "ftp://trunking.twilio.com"),
            (TIMEOUT_MS_ENV, "0"),
            (RETRY_BUDGET_MS_ENV, "forever"),
        ]))
        .unwrap_err();
        assert_eq!(err.problems().len(), 4, "{err}");
        for v in [
            API_BASE_ENV,
            TRUNKING_BASE_ENV,
            TIMEOUT_MS_ENV,
            RETRY_BUDGET_MS_ENV,
        ] {
            assert!(err.names(v), "{v} in {err}");
        }
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn with_bases_checks_both() {
        let err =
            TwilioConfig::with_bases("not a url", "https://u:pw@trunking.twilio.com").unwrap_err();
        assert!(
            err.names(API_BASE_ENV) && err.names(TRUNKING_BASE_ENV),
            "{err}"
        );
        assert!(!err.to_string().contains("pw"), "{err}");
    }

    #[test]
    fn validate_checks_what_code_can_get_wrong() {
        let c = TwilioConfig {
            list_page_size: 1001,
            request_timeout: Duration::ZERO,
            ..TwilioConfig::default()
        };
        let err = c.validate().unwrap_err();
        assert_eq!(err.problems().len(), 2, "{err}");
        assert!(err.names(TIMEOUT_MS_ENV), "{err}");
    }
}
