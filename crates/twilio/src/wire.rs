//! Twilio's JSON, narrowed to the fields the adapter reads, and the conversions into the
//! core's types. Unknown fields (including the account's `auth_token` in `FetchAccount`)
//! are never deserialized.

use serde::Deserialize;
use trunkline_core::E164;
use trunkline_core::phone::mask_phone;
use trunkline_core::ports::{CarrierNumber, CarrierRoute, CarrierRouteTarget};

use crate::sid::{ApplicationSid, OriginationUrlSid, PhoneNumberSid, TrunkSid};
use crate::voice::VoiceConfig;

#[derive(Debug, Deserialize)]
pub(crate) struct AccountJson {
    pub friendly_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CapabilitiesJson {
    pub voice: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct IncomingNumberJson {
    pub sid: Option<String>,
    pub phone_number: Option<String>,
    pub friendly_name: Option<String>,
    pub capabilities: Option<CapabilitiesJson>,
    pub trunk_sid: Option<String>,
    pub voice_url: Option<String>,
    pub voice_method: Option<String>,
    pub voice_fallback_url: Option<String>,
    pub voice_fallback_method: Option<String>,
    pub voice_application_sid: Option<String>,
    pub status_callback: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct NumberListJson {
    pub incoming_phone_numbers: Vec<IncomingNumberJson>,
    pub next_page_uri: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct MetaJson {
    pub next_page_url: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TrunkJson {
    pub sid: Option<String>,
    pub friendly_name: Option<String>,
    #[serde(default)]
    pub domain_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TrunkListJson {
    pub trunks: Vec<TrunkJson>,
    pub meta: MetaJson,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OriginationUrlJson {
    pub sid: Option<String>,
    pub trunk_sid: Option<String>,
    pub sip_url: Option<String>,
    pub priority: Option<i64>,
    pub weight: Option<i64>,
    pub enabled: Option<bool>,
    pub friendly_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OriginationUrlListJson {
    pub origination_urls: Vec<OriginationUrlJson>,
    pub meta: MetaJson,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TrunkNumberJson {
    pub sid: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TrunkNumberListJson {
    pub phone_numbers: Vec<TrunkNumberJson>,
    pub meta: MetaJson,
}

/// Twilio answers `""` as often as `null` for "not set".
fn set(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

impl IncomingNumberJson {
    /// `None` (logged, masked) when Twilio's data does not parse: a number trunkline
    /// cannot address is left out rather than shown wrong. The number's trunk is its route;
    /// its own voice configuration is its routing record.
    pub fn into_carrier(self) -> Option<CarrierNumber> {
        let sid = PhoneNumberSid::parse(self.sid.as_deref().unwrap_or_default()).ok()?;
        let raw = self.phone_number.unwrap_or_default();
        let Ok(e164) = E164::parse(&raw) else {
            tracing::warn!(
                number_sid = %sid,
                phone = %mask_phone(&raw),
                "Twilio number is not a valid E.164 number; left out"
            );
            return None;
        };
        let voice_application_sid = set(self.voice_application_sid).and_then(|a| {
            ApplicationSid::parse(&a)
                .inspect_err(|_| {
                    tracing::warn!(number_sid = %sid, "unreadable voice_application_sid ignored");
                })
                .ok()
        });
        Some(CarrierNumber {
            e164,
            friendly_name: set(self.friendly_name),
            voice_capable: self.capabilities.unwrap_or_default().voice.unwrap_or(false),
            route_id: set(self.trunk_sid)
                .and_then(|t| TrunkSid::parse(&t).ok())
                .map(Into::into),
            routing: VoiceConfig {
                voice_url: set(self.voice_url),
                voice_method: set(self.voice_method),
                voice_fallback_url: set(self.voice_fallback_url),
                voice_fallback_method: set(self.voice_fallback_method),
                voice_application_sid,
                status_callback: set(self.status_callback),
            }
            .to_routing(),
            id: sid.into(),
        })
    }
}

impl TrunkJson {
    /// A trunk is a route; its friendly name is the route's name.
    pub fn into_carrier(self) -> Option<CarrierRoute> {
        Some(CarrierRoute {
            id: TrunkSid::parse(self.sid.as_deref().unwrap_or_default())
                .ok()?
                .into(),
            name: self.friendly_name,
        })
    }
}

impl OriginationUrlJson {
    /// An origination URL is a route target; its friendly name is the target's name.
    pub fn into_carrier(self, trunk: &TrunkSid) -> Option<CarrierRouteTarget> {
        let clamp = |v: Option<i64>| u16::try_from(v.unwrap_or(0).max(0)).unwrap_or(u16::MAX);
        Some(CarrierRouteTarget {
            id: OriginationUrlSid::parse(self.sid.as_deref().unwrap_or_default())
                .ok()?
                .into(),
            route_id: set(self.trunk_sid)
                .and_then(|t| TrunkSid::parse(&t).ok())
                .unwrap_or_else(|| trunk.clone())
                .into(),
            sip_url: self.sip_url.unwrap_or_default(),
            priority: clamp(self.priority),
            weight: clamp(self.weight),
            enabled: self.enabled.unwrap_or(false),
            name: set(self.friendly_name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(json: &str) -> Option<CarrierNumber> {
        serde_json::from_str::<IncomingNumberJson>(json)
            .unwrap()
            .into_carrier()
    }

    #[test]
    fn empty_strings_mean_unset() {
        let n = number(&format!(
            r#"{{"sid":"PN{h}","phone_number":"+14155550100","friendly_name":"","capabilities":{{"voice":true}},
               "trunk_sid":"","voice_url":"","voice_method":"POST","voice_application_sid":"","status_callback":""}}"#,
            h = "a".repeat(32)
        ))
        .unwrap();
        assert_eq!(n.route_id, None);
        assert_eq!(n.friendly_name, None);
        assert_eq!(
            VoiceConfig::from_routing(&n.routing).unwrap(),
            VoiceConfig {
                voice_method: Some("POST".into()),
                ..VoiceConfig::default()
            }
        );
        assert!(n.voice_capable);
    }

    #[test]
    fn unparseable_numbers_are_left_out() {
        let h = "a".repeat(32);
        assert!(number(&format!(r#"{{"sid":"PN{h}","phone_number":"12345"}}"#)).is_none());
        assert!(number(r#"{"sid":"nope","phone_number":"+14155550100"}"#).is_none());
        assert!(
            number(&format!(
                r#"{{"sid":"PN{h}","phone_number":"+14155550100"}}"#
            ))
            .is_some()
        );
    }

    #[test]
    fn origination_values_are_clamped_and_default_to_the_trunk() {
        let tk = TrunkSid::parse(&format!("TK{}", "b".repeat(32))).unwrap();
        let o: OriginationUrlJson = serde_json::from_str(&format!(
            r#"{{"sid":"OU{}","sip_url":"sip:a.example","priority":70000,"weight":-1,"enabled":true,"friendly_name":null}}"#,
            "c".repeat(32)
        ))
        .unwrap();
        let o = o.into_carrier(&tk).unwrap();
        assert_eq!((o.priority, o.weight), (u16::MAX, 0));
        assert_eq!(o.route_id, tk.into());
    }
}
