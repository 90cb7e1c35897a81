//! Twilio's SIDs: a two-letter prefix and 32 hexadecimal characters, parsed strictly.
//!
//! The core only knows opaque ids ([`CarrierNumberId`], [`RouteId`], ...). Every SID the
//! adapter hands the core becomes one of those, and every id that comes back from the core
//! is parsed into its SID again before it reaches a URL, so a value of another carrier (or
//! a damaged row) is refused instead of being sent to Twilio.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use trunkline_core::ValidationError;
use trunkline_core::ids::{
    CarrierAccountId, CarrierNumberId, CredentialKeyId, RouteId, RouteTargetId,
};

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

/// The core's opaque id for a SID, and the strict way back.
macro_rules! neutral_id {
    ($sid:ident => $id:ident) => {
        impl From<&$sid> for $id {
            fn from(sid: &$sid) -> Self {
                // 34 ASCII letters and digits always make a valid opaque id.
                $id::parse(sid.as_str())
                    .unwrap_or_else(|e| unreachable!("a SID is a valid opaque id: {e}"))
            }
        }

        impl From<$sid> for $id {
            fn from(sid: $sid) -> Self {
                Self::from(&sid)
            }
        }

        impl TryFrom<&$id> for $sid {
            type Error = ValidationError;
            fn try_from(id: &$id) -> Result<Self, Self::Error> {
                Self::parse(id.as_str())
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
    /// A Twilio Elastic SIP trunk (`TK…`): the core's SIP route.
    TrunkSid, "TK", "Twilio Trunk SID"
);
twilio_sid!(
    /// A Twilio trunk origination URL (`OU…`): the core's route target.
    OriginationUrlSid, "OU", "Twilio Origination URL SID"
);
twilio_sid!(
    /// A Twilio voice application (`AP…`), part of a number's voice configuration.
    ApplicationSid, "AP", "Twilio Application SID"
);

neutral_id!(AccountSid => CarrierAccountId);
neutral_id!(ApiKeySid => CredentialKeyId);
neutral_id!(PhoneNumberSid => CarrierNumberId);
neutral_id!(TrunkSid => RouteId);
neutral_id!(OriginationUrlSid => RouteTargetId);

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
    fn sids_round_trip_through_the_cores_opaque_ids() {
        let pn = PhoneNumberSid::parse(&format!("PN{HEX32}")).unwrap();
        let id = CarrierNumberId::from(&pn);
        assert_eq!(id.as_str(), pn.as_str());
        assert_eq!(PhoneNumberSid::try_from(&id).unwrap(), pn);
        let tk = TrunkSid::parse(&format!("TK{HEX32}")).unwrap();
        assert_eq!(TrunkSid::try_from(&RouteId::from(&tk)).unwrap(), tk);
    }

    #[test]
    fn opaque_ids_of_another_format_are_refused() {
        // A Telnyx number id, or a SID of the wrong kind, is never taken for a Twilio SID.
        let telnyx = CarrierNumberId::parse("1293384261075731499").unwrap();
        assert!(PhoneNumberSid::try_from(&telnyx).is_err());
        let trunk_as_number = CarrierNumberId::parse(&format!("TK{HEX32}")).unwrap();
        assert!(PhoneNumberSid::try_from(&trunk_as_number).is_err());
        let route = RouteId::parse("2f0e6c1e-route").unwrap();
        assert!(TrunkSid::try_from(&route).is_err());
        let target = RouteTargetId::parse(&format!("OU{}", &HEX32[2..])).unwrap();
        assert!(OriginationUrlSid::try_from(&target).is_err());
    }
}
