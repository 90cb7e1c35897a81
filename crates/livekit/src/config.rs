//! Adapter configuration: where LiveKit is, the API key it signs with, and what every inbound
//! trunk trunkline creates looks like.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// The LiveKit server API (`wss://…` or `https://…`; tests point it at the emulator).
pub const URL_ENV: &str = "TRUNKLINE_LIVEKIT_URL";
/// The API key: the `iss` of every token trunkline signs and of every webhook LiveKit sends.
pub const API_KEY_ENV: &str = "TRUNKLINE_LIVEKIT_API_KEY";
/// The API key's secret.
pub const API_SECRET_ENV: &str = "TRUNKLINE_LIVEKIT_API_SECRET";
/// Comma-separated IPs or CIDRs inbound trunks accept calls from (the carrier's signalling
/// addresses). Unset: any source.
pub const ALLOWED_ADDRESSES_ENV: &str = "TRUNKLINE_LIVEKIT_INBOUND_ALLOWED_ADDRESSES";
/// SIP digest user name inbound trunks require. Set together with the password.
pub const AUTH_USERNAME_ENV: &str = "TRUNKLINE_LIVEKIT_INBOUND_AUTH_USERNAME";
/// SIP digest password inbound trunks require.
pub const AUTH_PASSWORD_ENV: &str = "TRUNKLINE_LIVEKIT_INBOUND_AUTH_PASSWORD";
/// `disable`, `allow` or `require` (SRTP). Unset: LiveKit's default (disabled).
pub const MEDIA_ENCRYPTION_ENV: &str = "TRUNKLINE_LIVEKIT_MEDIA_ENCRYPTION";
/// Per-request timeout in seconds (default 10).
pub const REQUEST_TIMEOUT_ENV: &str = "TRUNKLINE_LIVEKIT_REQUEST_TIMEOUT_SECS";

/// A configuration value that cannot be used. Never carries the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveKitConfigError {
    #[error("{name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("{name} is required when {URL_ENV} is set")]
    Missing { name: &'static str },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// SRTP on the media of inbound calls (LiveKit's `SIPMediaEncryption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaEncryption {
    Disable,
    /// Encrypt when the carrier offers it.
    Allow,
    /// Refuse calls without encryption.
    Require,
}

impl MediaEncryption {
    pub fn parse(raw: &str) -> Result<Self, LiveKitConfigError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "disable" | "disabled" | "off" => Ok(Self::Disable),
            "allow" | "allowed" => Ok(Self::Allow),
            "require" | "required" => Ok(Self::Require),
            _ => Err(LiveKitConfigError::Invalid {
                name: MEDIA_ENCRYPTION_ENV,
                reason: "must be disable, allow or require".to_owned(),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Require => "require",
        }
    }

    /// The protobuf enum value.
    pub(crate) fn to_proto(self) -> livekit_protocol::SipMediaEncryption {
        use livekit_protocol::SipMediaEncryption as P;
        match self {
            Self::Disable => P::SipMediaEncryptDisable,
            Self::Allow => P::SipMediaEncryptAllow,
            Self::Require => P::SipMediaEncryptRequire,
        }
    }
}

/// How every inbound trunk trunkline creates is secured. Connect makes each trunk match this
/// exactly (a value removed from the configuration is removed from the trunk on reconnect).
#[derive(Clone, Default)]
pub struct InboundTrunkOptions {
    /// IPs or CIDRs calls are accepted from; empty accepts any source.
    pub allowed_addresses: Vec<String>,
    /// SIP digest authentication the carrier must answer; both or neither.
    pub auth_username: Option<String>,
    pub auth_password: Option<SecretString>,
    /// `None` leaves LiveKit's default (no encryption).
    pub media_encryption: Option<MediaEncryption>,
}

impl fmt::Debug for InboundTrunkOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundTrunkOptions")
            .field("allowed_addresses", &self.allowed_addresses)
            .field("auth_username", &self.auth_username)
            .field(
                "auth_password",
                &self.auth_password.as_ref().map(|_| "[REDACTED]"),
            )
            .field("media_encryption", &self.media_encryption)
            .finish()
    }
}

/// How the adapter reaches LiveKit.
#[derive(Clone)]
pub struct LiveKitConfig {
    /// The server API base. `ws(s)://` is accepted and means `http(s)://`, as in LiveKit's SDKs.
    pub url: String,
    pub api_key: String,
    pub api_secret: SecretString,
    /// Longest wait for one request, connection to last byte.
    pub request_timeout: Duration,
    pub inbound: InboundTrunkOptions,
}

impl fmt::Debug for LiveKitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveKitConfig")
            .field("url", &self.url)
            .field("api_key", &self.api_key)
            .field("api_secret", &"[REDACTED]")
            .field("request_timeout", &self.request_timeout)
            .field("inbound", &self.inbound)
            .finish()
    }
}

impl LiveKitConfig {
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

    /// A configuration with the default timeout and open inbound trunks.
    pub fn new(
        url: impl Into<String>,
        api_key: impl Into<String>,
        api_secret: SecretString,
    ) -> Self {
        Self {
            url: url.into(),
            api_key: api_key.into(),
            api_secret,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            inbound: InboundTrunkOptions::default(),
        }
    }

    /// Read the configuration through `lookup` (the server passes its environment).
    /// `Ok(None)` when [`URL_ENV`] is unset: LiveKit is not configured, and connect says so.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, LiveKitConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let Some(url) = get(URL_ENV) else {
            return Ok(None);
        };
        let api_key = get(API_KEY_ENV).ok_or(LiveKitConfigError::Missing { name: API_KEY_ENV })?;
        let api_secret = get(API_SECRET_ENV).ok_or(LiveKitConfigError::Missing {
            name: API_SECRET_ENV,
        })?;
        let mut config = Self::new(url.trim(), api_key.trim(), SecretString::from(api_secret));
        if let Some(raw) = get(REQUEST_TIMEOUT_ENV) {
            let secs: u64 = raw
                .trim()
                .parse()
                .map_err(|_| LiveKitConfigError::Invalid {
                    name: REQUEST_TIMEOUT_ENV,
                    reason: "must be a whole number of seconds".to_owned(),
                })?;
            config.request_timeout = Duration::from_secs(secs);
        }
        if let Some(raw) = get(ALLOWED_ADDRESSES_ENV) {
            config.inbound.allowed_addresses = raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        config.inbound.auth_username = get(AUTH_USERNAME_ENV).map(|u| u.trim().to_owned());
        config.inbound.auth_password = get(AUTH_PASSWORD_ENV).map(SecretString::from);
        if let Some(raw) = get(MEDIA_ENCRYPTION_ENV) {
            config.inbound.media_encryption = Some(MediaEncryption::parse(&raw)?);
        }
        config.validate()?;
        Ok(Some(config))
    }

    /// Check every value; the error names the variable.
    pub fn validate(&self) -> Result<(), LiveKitConfigError> {
        self.base_url()?;
        if self.api_key.trim().is_empty() {
            return Err(LiveKitConfigError::Missing { name: API_KEY_ENV });
        }
        if self.api_secret.expose_secret().is_empty() {
            return Err(LiveKitConfigError::Missing {
                name: API_SECRET_ENV,
            });
        }
        if self.request_timeout.is_zero() {
            return Err(LiveKitConfigError::Invalid {
                name: REQUEST_TIMEOUT_ENV,
                reason: "must be more than zero".to_owned(),
            });
        }
        for addr in &self.inbound.allowed_addresses {
            if !is_ip_or_cidr(addr) {
                return Err(LiveKitConfigError::Invalid {
                    name: ALLOWED_ADDRESSES_ENV,
                    reason: format!("{addr:?} is not an IP address or CIDR"),
                });
            }
        }
        let user = self
            .inbound
            .auth_username
            .as_deref()
            .is_some_and(|u| !u.is_empty());
        let pass = self
            .inbound
            .auth_password
            .as_ref()
            .is_some_and(|p| !p.expose_secret().is_empty());
        if user != pass {
            return Err(LiveKitConfigError::Invalid {
                name: if user {
                    AUTH_PASSWORD_ENV
                } else {
                    AUTH_USERNAME_ENV
                },
                reason: format!("{AUTH_USERNAME_ENV} and {AUTH_PASSWORD_ENV} go together"),
            });
        }
        Ok(())
    }

    /// The HTTP base of the server API: `ws(s)` mapped to `http(s)`, no trailing slash.
    pub fn base_url(&self) -> Result<Url, LiveKitConfigError> {
        let invalid = |reason: &str| LiveKitConfigError::Invalid {
            name: URL_ENV,
            reason: reason.to_owned(),
        };
        let raw = self.url.trim();
        let mapped = if let Some(rest) = raw.strip_prefix("wss://") {
            format!("https://{rest}")
        } else if let Some(rest) = raw.strip_prefix("ws://") {
            format!("http://{rest}")
        } else {
            raw.to_owned()
        };
        let url = Url::parse(&mapped).map_err(|e| invalid(&format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("must be an http(s):// or ws(s):// URL"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "must not carry credentials; use the API key variables",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("must not have a query or fragment"));
        }
        Ok(url)
    }
}

/// LiveKit accepts an IPv4/IPv6 address or a CIDR block.
fn is_ip_or_cidr(raw: &str) -> bool {
    let (addr, bits) = match raw.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (raw, None),
    };
    let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    bits.is_none_or(|b| b.parse::<u8>().is_ok_and(|n| n <= max))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn unset_url_means_not_configured() {
        assert!(LiveKitConfig::from_lookup(lookup(&[])).unwrap().is_none());
        assert!(
            LiveKitConfig::from_lookup(lookup(&[(URL_ENV, "  ")]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn url_without_keys_names_the_missing_variable() {
        let err = LiveKitConfig::from_lookup(lookup(&[(URL_ENV, "wss://lk.example")])).unwrap_err();
        assert_eq!(err, LiveKitConfigError::Missing { name: API_KEY_ENV });
        let err = LiveKitConfig::from_lookup(lookup(&[
            (URL_ENV, "wss://lk.example"),
            (API_KEY_ENV, "APIkey"),
        ]))
        .unwrap_err();
        assert_eq!(
            err,
            LiveKitConfigError::Missing {
                name: API_SECRET_ENV
            }
        );
    }

    #[test]
    fn full_configuration_parses_and_hides_the_secrets() {
        let c = LiveKitConfig::from_lookup(lookup(&[
            (URL_ENV, "wss://lk.example"),
            (API_KEY_ENV, "APIkey"),
            (API_SECRET_ENV, "very-secret-value"),
            (ALLOWED_ADDRESSES_ENV, "54.172.60.0/30, 2001:db8::1"),
            (AUTH_USERNAME_ENV, "carrier"),
            (AUTH_PASSWORD_ENV, "sip-password-value"),
            (MEDIA_ENCRYPTION_ENV, "Require"),
            (REQUEST_TIMEOUT_ENV, "4"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.base_url().unwrap().as_str(), "https://lk.example/");
        assert_eq!(
            c.inbound.allowed_addresses,
            ["54.172.60.0/30", "2001:db8::1"]
        );
        assert_eq!(c.inbound.media_encryption, Some(MediaEncryption::Require));
        assert_eq!(c.request_timeout, Duration::from_secs(4));
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("very-secret-value") && !dbg.contains("sip-password-value"),
            "{dbg}"
        );
    }

    #[test]
    fn bad_values_are_refused_with_their_variable() {
        let base = [
            (URL_ENV, "http://127.0.0.1:7880"),
            (API_KEY_ENV, "k"),
            (API_SECRET_ENV, "s"),
        ];
        let with = |extra: (&'static str, &'static str)| {
            let mut pairs = base.to_vec();
            pairs.push(extra);
            LiveKitConfig::from_lookup(lookup(&pairs)).unwrap_err()
        };
        for (extra, name) in [
            (
                (ALLOWED_ADDRESSES_ENV, "10.0.0.0/33"),
                ALLOWED_ADDRESSES_ENV,
            ),
            (
                (ALLOWED_ADDRESSES_ENV, "carrier.example"),
                ALLOWED_ADDRESSES_ENV,
            ),
            ((AUTH_USERNAME_ENV, "only-user"), AUTH_PASSWORD_ENV),
            ((AUTH_PASSWORD_ENV, "only-pass"), AUTH_USERNAME_ENV),
            ((MEDIA_ENCRYPTION_ENV, "maybe"), MEDIA_ENCRYPTION_ENV),
            ((REQUEST_TIMEOUT_ENV, "0"), REQUEST_TIMEOUT_ENV),
            ((REQUEST_TIMEOUT_ENV, "soon"), REQUEST_TIMEOUT_ENV),
        ] {
            match with(extra) {
                LiveKitConfigError::Invalid { name: got, .. } => assert_eq!(got, name, "{extra:?}"),
                other => panic!("{extra:?}: {other:?}"),
            }
        }
        for url in [
            "ftp://lk.example",
            "not a url",
            "https://user:pw@lk.example",
            "https://lk.example/?a=1",
        ] {
            let c = LiveKitConfig::new(url, "k", SecretString::from("s"));
            assert!(
                matches!(
                    c.validate(),
                    Err(LiveKitConfigError::Invalid { name: URL_ENV, .. })
                ),
                "{url}"
            );
        }
        assert_eq!(
            LiveKitConfig::new("ws://127.0.0.1:7880", "k", SecretString::from("s"))
                .base_url()
                .unwrap()
                .as_str(),
            "http://127.0.0.1:7880/"
        );
    }
}
