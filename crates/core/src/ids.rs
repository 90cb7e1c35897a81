//! Identifiers, each parsed once at the edge.
//!
//! Twilio SIDs are a two-letter prefix and 32 hexadecimal characters. Our own ids are UUIDs
//! (v7, so they sort by creation time). LiveKit ids are opaque, prefixed strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::error::ValidationError;

/// Strip what people paste around an identifier (spaces, newlines); nothing inside is touched.
fn trimmed(raw: &str) -> &str {
    raw.trim_matches(|c: char| c.is_whitespace())
}

macro_rules! twilio_sid {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The two-letter prefix every value starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Parse a SID: the prefix, then exactly 32 hexadecimal characters.
            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                let s = trimmed(raw);
                let Some(rest) = s.strip_prefix($prefix) else {
                    return Err(ValidationError::new(concat!(
                        "must be a ", $what, " starting with '", $prefix, "'"
                    )));
                };
                if rest.len() != 32 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ValidationError::new(concat!(
                        "must be a ", $what, ": '", $prefix, "' followed by 32 hexadecimal characters"
                    )));
                }
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

twilio_sid!(
    /// A Twilio account (`AC…`).
    AccountSid, "AC", "Twilio Account SID"
);
twilio_sid!(
    /// A Twilio API key (`SK…`). Its secret travels separately as a `SecretString`.
    ApiKeySid, "SK", "Twilio API Key SID"
);
twilio_sid!(
    /// A Twilio IncomingPhoneNumber (`PN…`): the customer's existing number.
    PhoneNumberSid, "PN", "Twilio Phone Number SID"
);
twilio_sid!(
    /// A Twilio Elastic SIP trunk (`TK…`).
    TrunkSid, "TK", "Twilio Trunk SID"
);
twilio_sid!(
    /// A Twilio trunk origination URL (`OU…`).
    OriginationUrlSid, "OU", "Twilio Origination URL SID"
);
twilio_sid!(
    /// A Twilio voice application (`AP…`), part of a number's voice configuration.
    ApplicationSid, "AP", "Twilio Application SID"
);

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parse the hyphenated UUID form.
            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                Uuid::parse_str(trimmed(raw))
                    .map(Self)
                    .map_err(|_| ValidationError::new("must be a UUID"))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

uuid_id!(
    /// A stored carrier integration (credentials of one customer at one provider).
    IntegrationId
);
uuid_id!(
    /// A number connection: one customer's number wired to LiveKit.
    ConnectionId
);
uuid_id!(
    /// A call record.
    CallId
);
uuid_id!(
    /// An audit event.
    AuditEventId
);

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident, $max:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Longest accepted value, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Parse: 1 to `MAX_LEN` bytes, no whitespace or control characters.
            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                let s = trimmed(raw);
                if s.is_empty() {
                    return Err(ValidationError::new(concat!($what, " must not be empty")));
                }
                if s.len() > $max {
                    return Err(ValidationError::new(format!(
                        concat!($what, " must be at most {} bytes"),
                        $max
                    )));
                }
                if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return Err(ValidationError::new(concat!(
                        $what,
                        " must not contain whitespace or control characters"
                    )));
                }
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

opaque_id!(
    /// The tenant: taken from the configured JWT claim, opaque to trunkline.
    CustomerId, 128, "customer id"
);
opaque_id!(
    /// A LiveKit SIP inbound trunk (`ST_…`).
    SipTrunkId, 128, "LiveKit SIP trunk id"
);
opaque_id!(
    /// A LiveKit SIP dispatch rule (`SDR_…`).
    DispatchRuleId, 128, "LiveKit dispatch rule id"
);
opaque_id!(
    /// A LiveKit agent dispatch (`AD_…`).
    AgentDispatchId, 128, "LiveKit agent dispatch id"
);
opaque_id!(
    /// A LiveKit room name.
    RoomName, 256, "room name"
);
opaque_id!(
    /// A LiveKit webhook event id (`EV_…`): the deduplication key.
    WebhookEventId, 128, "webhook event id"
);

/// The carriers trunkline can manage numbers at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Twilio,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 1] = [Self::Twilio];

    /// The path and storage form, e.g. `twilio`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Twilio => "twilio",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match trimmed(raw).to_ascii_lowercase().as_str() {
            "twilio" => Ok(Self::Twilio),
            _ => Err(ValidationError::new("unknown provider; supported: twilio")),
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX32: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn twilio_sids_parse_and_trim() {
        let sid = AccountSid::parse(&format!("  AC{HEX32}\n")).unwrap();
        assert_eq!(sid.as_str(), format!("AC{HEX32}"));
        assert!(PhoneNumberSid::parse(&format!("PN{}", HEX32.to_uppercase())).is_ok());
    }

    #[test]
    fn twilio_sids_reject_wrong_prefix_length_and_alphabet() {
        assert!(AccountSid::parse(&format!("SK{HEX32}")).is_err());
        assert!(AccountSid::parse(&format!("AC{}", &HEX32[1..])).is_err());
        assert!(AccountSid::parse(&format!("AC{HEX32}0")).is_err());
        assert!(AccountSid::parse(&format!("AC{}z", &HEX32[1..])).is_err());
        assert!(AccountSid::parse("").is_err());
        let err = TrunkSid::parse("TKnope").unwrap_err();
        assert!(err.reason.contains("32 hexadecimal"), "{err}");
    }

    #[test]
    fn sids_deserialize_through_the_parser() {
        let ok: Result<ApiKeySid, _> = serde_json::from_str(&format!("\"SK{HEX32}\""));
        assert!(ok.is_ok());
        let bad: Result<ApiKeySid, _> = serde_json::from_str("\"SK123\"");
        assert!(bad.is_err());
    }

    #[test]
    fn opaque_ids_reject_empty_long_and_control() {
        assert!(CustomerId::parse("cust_1").is_ok());
        assert!(CustomerId::parse("   ").is_err());
        assert!(CustomerId::parse(&"x".repeat(129)).is_err());
        assert!(CustomerId::parse("a\u{0}b").is_err());
        assert!(CustomerId::parse("a b").is_err());
    }

    #[test]
    fn uuid_ids_round_trip() {
        let id = ConnectionId::new();
        assert_eq!(ConnectionId::parse(&id.to_string()).unwrap(), id);
        assert!(ConnectionId::parse("not-a-uuid").is_err());
    }

    #[test]
    fn provider_kind_parses_case_insensitively() {
        assert_eq!(ProviderKind::parse("Twilio").unwrap(), ProviderKind::Twilio);
        assert!(ProviderKind::parse("telnyx").is_err());
        assert_eq!(ProviderKind::Twilio.to_string(), "twilio");
    }
}
