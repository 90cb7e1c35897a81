//! Adapter configuration: where Twilio is, how long to wait, how much to retry.

use std::time::Duration;

use url::Url;

/// Environment variable naming the 2010 API base (tests point it at an emulator).
pub const API_BASE_ENV: &str = "TRUNKLINE_TWILIO_API_BASE";
/// Environment variable naming the Trunking v1 base.
pub const TRUNKING_BASE_ENV: &str = "TRUNKLINE_TWILIO_TRUNKING_BASE";

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwilioConfigError {
    #[error("{name}: {reason}")]
    InvalidBase { name: &'static str, reason: String },
    #[error("{name}: {reason}")]
    InvalidValue { name: &'static str, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
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
    pub const MAX_PAGE_SIZE: u32 = 1000;

    /// Twilio's public hosts and production timeouts.
    pub fn twilio_public() -> Self {
        Self {
            api_base: Url::parse(Self::PUBLIC_API_BASE).unwrap_or_else(|_| unreachable!()),
            trunking_base: Url::parse(Self::PUBLIC_TRUNKING_BASE)
                .unwrap_or_else(|_| unreachable!()),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            max_retries: 3,
            retry_budget: Duration::from_secs(20),
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(4),
            list_page_size: Self::MAX_PAGE_SIZE,
        }
    }

    /// Production defaults with other hosts (an emulator, a proxy).
    pub fn with_bases(api_base: &str, trunking_base: &str) -> Result<Self, TwilioConfigError> {
        Ok(Self {
            api_base: parse_base(API_BASE_ENV, api_base)?,
            trunking_base: parse_base(TRUNKING_BASE_ENV, trunking_base)?,
            ..Self::twilio_public()
        })
    }

    /// Read the bases from [`API_BASE_ENV`] and [`TRUNKING_BASE_ENV`] through `lookup`
    /// (the server passes its environment), defaulting to Twilio's public hosts.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, TwilioConfigError> {
        let get = |name: &str, default: &str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Self::with_bases(
            &get(API_BASE_ENV, Self::PUBLIC_API_BASE),
            &get(TRUNKING_BASE_ENV, Self::PUBLIC_TRUNKING_BASE),
        )
    }

    pub fn validate(&self) -> Result<(), TwilioConfigError> {
        check_base(API_BASE_ENV, &self.api_base)?;
        check_base(TRUNKING_BASE_ENV, &self.trunking_base)?;
        if !(1..=Self::MAX_PAGE_SIZE).contains(&self.list_page_size) {
            return Err(TwilioConfigError::InvalidValue {
                name: "list_page_size",
                reason: format!("must be 1 to {}", Self::MAX_PAGE_SIZE),
            });
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if d.is_zero() {
                return Err(TwilioConfigError::InvalidValue {
                    name,
                    reason: "must be more than zero".to_owned(),
                });
            }
        }
        if self.backoff_max < self.backoff_base {
            return Err(TwilioConfigError::InvalidValue {
                name: "backoff_max",
                reason: "must not be below backoff_base".to_owned(),
            });
        }
        Ok(())
    }
}

impl Default for TwilioConfig {
    fn default() -> Self {
        Self::twilio_public()
    }
}

fn parse_base(name: &'static str, raw: &str) -> Result<Url, TwilioConfigError> {
    let url = Url::parse(raw.trim()).map_err(|e| TwilioConfigError::InvalidBase {
        name,
        reason: format!("not a URL: {e}"),
    })?;
    check_base(name, &url)?;
    Ok(url)
}

fn check_base(name: &'static str, url: &Url) -> Result<(), TwilioConfigError> {
    let fail = |reason: &str| {
        Err(TwilioConfigError::InvalidBase {
            name,
            reason: reason.to_owned(),
        })
    };
    if !matches!(url.scheme(), "https" | "http") {
        return fail("must be an http or https URL");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return fail("must name a host");
    }
    // Credentials in the base would be sent alongside (or instead of) the customer's.
    if !url.username().is_empty() || url.password().is_some() {
        return fail("must not contain credentials");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return fail("must not have a query or fragment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_twilio_public_hosts() {
        let c = TwilioConfig::default();
        assert_eq!(c.api_base.as_str(), "https://api.twilio.com/");
        assert_eq!(c.trunking_base.as_str(), "https://trunking.twilio.com/");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn lookup_overrides_and_blank_means_default() {
        let c = TwilioConfig::from_lookup(|name| match name {
            API_BASE_ENV => Some("http://127.0.0.1:7401".to_owned()),
            TRUNKING_BASE_ENV => Some("  ".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.api_base.as_str(), "http://127.0.0.1:7401/");
        assert_eq!(c.trunking_base.as_str(), "https://trunking.twilio.com/");
    }

    #[test]
    fn bad_bases_name_the_variable() {
        for bad in [
            "ftp://api.twilio.com",
            "not a url",
            "https://user:pw@api.twilio.com",
            "https://api.twilio.com/?x=1",
        ] {
            let err =
                TwilioConfig::with_bases(bad, TwilioConfig::PUBLIC_TRUNKING_BASE).expect_err(bad);
            assert!(err.to_string().starts_with(API_BASE_ENV), "{err}");
            assert!(!err.to_string().contains("pw"), "{err}");
        }
    }

    #[test]
    fn validate_checks_page_size_and_timeouts() {
        let mut c = TwilioConfig {
            list_page_size: 1001,
            ..TwilioConfig::default()
        };
        assert!(c.validate().is_err());
        c.list_page_size = 1000;
        c.request_timeout = Duration::ZERO;
        assert!(c.validate().is_err());
    }
}
