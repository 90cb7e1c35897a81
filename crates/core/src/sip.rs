//! The SIP target Twilio dials: the LiveKit SIP ingress.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ErrorCode, ValidationError};

/// SIP transport named in the URI's `transport` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SipTransport {
    Udp,
    Tcp,
    Tls,
}

impl SipTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }
}

/// A `sip:` URI naming a host, an optional port and an optional `transport` parameter,
/// e.g. `sip:abc123.sip.livekit.cloud`, `sip:10.0.0.5:5060;transport=tcp`.
///
/// Twilio trunk origination only dials `sip:` (not `sips:`), so `sips:` is refused here with
/// a message that says so. A user part or password in the URI, whitespace, control
/// characters, other parameters, headers and absurd lengths are refused too: the value ends
/// up in the customer's carrier configuration and must be exactly what we mean.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SipTarget {
    host: String,
    port: Option<u16>,
    transport: Option<SipTransport>,
}

/// Longest URI accepted. Real ingress URIs are well under 100 characters.
pub const SIP_TARGET_MAX_LEN: usize = 255;

fn invalid(reason: impl Into<String>) -> ValidationError {
    ValidationError::with_code(ErrorCode::InvalidSipTarget, reason)
}

impl SipTarget {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.len() > SIP_TARGET_MAX_LEN {
            return Err(invalid(format!(
                "must be at most {SIP_TARGET_MAX_LEN} characters"
            )));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("must not contain whitespace or control characters"));
        }
        let lower = raw.to_ascii_lowercase();
        if lower.starts_with("sips:") {
            return Err(invalid(
                "sips: is not supported: carrier routes dial sip: URIs; \
                 use sip:host;transport=tls for TLS signalling",
            ));
        }
        let Some(rest) = raw.get(4..).filter(|_| lower.starts_with("sip:")) else {
            return Err(invalid(
                "must be a sip: URI, e.g. sip:example.sip.livekit.cloud",
            ));
        };
        if rest.contains('@') {
            return Err(invalid(
                "must not contain a user part or credentials; give the host only",
            ));
        }
        if rest.contains('?') {
            return Err(invalid("must not contain URI headers"));
        }
        let mut parts = rest.split(';');
        let hostport = parts.next().unwrap_or_default();
        let mut transport = None;
        for param in parts {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if !name.eq_ignore_ascii_case("transport") {
                return Err(invalid("only the transport parameter is supported"));
            }
            if transport.is_some() {
                return Err(invalid("transport is given twice"));
            }
            transport = Some(match value.to_ascii_lowercase().as_str() {
                "udp" => SipTransport::Udp,
                "tcp" => SipTransport::Tcp,
                "tls" => SipTransport::Tls,
                _ => return Err(invalid("transport must be udp, tcp or tls")),
            });
        }
        let (host, port) = split_host_port(hostport)?;
        Ok(Self {
            host,
            port,
            transport,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }

    pub fn transport(&self) -> Option<SipTransport> {
        self.transport
    }
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), ValidationError> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| invalid("IPv6 host is missing its closing ']'"))?;
        addr.parse::<Ipv6Addr>()
            .map_err(|_| invalid("IPv6 host is not a valid address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| invalid("unexpected text after host"))?,
            ),
        };
        (format!("[{}]", addr.to_ascii_lowercase()), port)
    } else {
        let (h, p) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        };
        validate_hostname(h)?;
        (h.to_ascii_lowercase(), p)
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| invalid("port must be a number from 1 to 65535"))
        })
        .transpose()?;
    Ok((host, port))
}

fn validate_hostname(h: &str) -> Result<(), ValidationError> {
    if h.is_empty() {
        return Err(invalid("must name a host"));
    }
    if h.parse::<Ipv4Addr>().is_ok() {
        return Ok(());
    }
    if h.len() > 253 {
        return Err(invalid("host name is longer than 253 characters"));
    }
    for label in h.trim_end_matches('.').split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(invalid("host must be a DNS name or an IP address"));
        }
    }
    if h.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(invalid(
            "host looks like an IPv4 address but is not a valid one",
        ));
    }
    Ok(())
}

impl fmt::Display for SipTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sip:{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(t) = self.transport {
            write!(f, ";transport={}", t.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for SipTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SipTarget({self})")
    }
}

impl FromStr for SipTarget {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for SipTarget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SipTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalizes() {
        let cases = [
            (
                "sip:abc123.sip.livekit.cloud",
                "sip:abc123.sip.livekit.cloud",
            ),
            ("SIP:ABC.Example.COM", "sip:abc.example.com"),
            (
                "sip:10.0.0.5:5060;transport=TCP",
                "sip:10.0.0.5:5060;transport=tcp",
            ),
            (
                "sip:[2001:DB8::1]:5061;transport=tls",
                "sip:[2001:db8::1]:5061;transport=tls",
            ),
            ("sip:localhost", "sip:localhost"),
        ];
        for (raw, want) in cases {
            let t = SipTarget::parse(raw).unwrap();
            assert_eq!(t.to_string(), want, "{raw}");
            assert_eq!(SipTarget::parse(&t.to_string()).unwrap(), t);
        }
        let t = SipTarget::parse("sip:h.example:5080;transport=udp").unwrap();
        assert_eq!(
            (t.host(), t.port(), t.transport()),
            ("h.example", Some(5080), Some(SipTransport::Udp))
        );
    }

    #[test]
    fn rejects_with_invalid_sip_target() {
        let cases = [
            "sips:secure.example.com",
            "http://example.com",
            "example.com",
            "sip:",
            "sip:user:pass@example.com",
            "sip:user@example.com",
            "sip:example.com;transport=ws",
            "sip:example.com;lr",
            "sip:example.com;transport=udp;transport=tcp",
            "sip:example.com:0",
            "sip:example.com:70000",
            "sip:example.com:",
            "sip:exa mple.com",
            "sip:example.com\r\nVia: x",
            "sip:-bad-.com",
            "sip:999.1.1.1",
            "sip:[::1",
            "sip:example.com?subject=x",
        ];
        for raw in cases {
            let err = SipTarget::parse(raw).expect_err(raw);
            assert_eq!(err.code, ErrorCode::InvalidSipTarget, "{raw}");
        }
        let long = format!("sip:{}.com", "a".repeat(300));
        assert!(SipTarget::parse(&long).is_err());
        assert!(
            SipTarget::parse("sips:x.example")
                .unwrap_err()
                .reason
                .contains("sip:")
        );
    }

    #[test]
    fn serde_uses_the_uri_form() {
        let t: SipTarget = serde_json::from_str("\"sip:a.example:5060\"").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"sip:a.example:5060\"");
        assert!(serde_json::from_str::<SipTarget>("\"sips:a.example\"").is_err());
    }
}
