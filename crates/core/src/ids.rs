//! Identifiers, each parsed once at the edge.
//!
//! Our own ids are UUIDs (v7, so they sort by creation time). Carrier ids (a number, a SIP
//! route, a route target, an account) and LiveKit ids are opaque strings here: the core never
//! knows a carrier's id format. Each carrier adapter parses its own ids strictly (Twilio's
//! `PN…` SIDs, Telnyx's numeric ids) before they reach a use case.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::error::ValidationError;

/// Strip what people paste around an identifier (spaces, newlines); nothing inside is touched.
fn trimmed(raw: &str) -> &str {
    raw.trim_matches(|c: char| c.is_whitespace())
}

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
uuid_id!(
    /// A bulk job (connect or disconnect of many numbers). Time-ordered: newer ids sort
    /// after older ones, which is what paging the job list relies on.
    JobId
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
    /// A number at a carrier, as that carrier's adapter parsed it (Twilio `PN…`, Telnyx a
    /// numeric id). Opaque to the core.
    CarrierNumberId, 128, "number id"
);
opaque_id!(
    /// A carrier-side SIP route that sends calls to SIP targets (Twilio: an Elastic SIP
    /// trunk `TK…`; Telnyx: an FQDN connection). Opaque to the core.
    RouteId, 128, "route id"
);
opaque_id!(
    /// One SIP target of a route (Twilio: an origination URL `OU…`; Telnyx: an FQDN).
    RouteTargetId, 128, "route target id"
);
opaque_id!(
    /// The customer's account at the carrier, when the carrier names one (Twilio `AC…`).
    CarrierAccountId, 128, "account id"
);
opaque_id!(
    /// The public half of a carrier API key, when the carrier has one (Twilio `SK…`).
    CredentialKeyId, 128, "key id"
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
    Telnyx,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 2] = [Self::Twilio, Self::Telnyx];

    /// The path and storage form, e.g. `twilio`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Twilio => "twilio",
            Self::Telnyx => "telnyx",
        }
    }

    /// The carrier's name as people write it.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Twilio => "Twilio",
            Self::Telnyx => "Telnyx",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let raw = trimmed(raw).to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == raw)
            .ok_or_else(|| ValidationError::new("must be one of \"twilio\", \"telnyx\""))
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
        assert_eq!(ProviderKind::parse("telnyx").unwrap(), ProviderKind::Telnyx);
        assert!(ProviderKind::parse("plivo").is_err());
        assert_eq!(ProviderKind::Twilio.to_string(), "twilio");
    }
}
