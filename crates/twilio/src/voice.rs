//! A number's own voice configuration: Twilio's routing record behind the core's
//! [`NumberRouting`].

use serde::{Deserialize, Serialize};
use trunkline_core::ErrorCode;
use trunkline_core::model::NumberRouting;
use trunkline_core::ports::ProviderError;

use crate::sid::ApplicationSid;

/// What Twilio does with a call to a number when it is *not* on a trunk. Recorded before
/// attaching (attaching silently overrides it) so that disconnect can put it back.
///
/// Its camelCase JSON is the [`NumberRouting`] record the core stores: rows written before
/// carriers were pluggable hold exactly this JSON (all six keys), so the shape must not
/// change. Unknown keys are refused so that another carrier's record never passes for an
/// empty voice configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VoiceConfig {
    pub voice_url: Option<String>,
    pub voice_method: Option<String>,
    pub voice_fallback_url: Option<String>,
    pub voice_fallback_method: Option<String>,
    pub voice_application_sid: Option<ApplicationSid>,
    pub status_callback: Option<String>,
}

impl VoiceConfig {
    /// The record the core keeps for this configuration.
    pub fn to_routing(&self) -> NumberRouting {
        // Six optional strings always serialize.
        NumberRouting(serde_json::to_value(self).unwrap_or_default())
    }

    /// Read a record back. `null` ([`NumberRouting::none`]) is an empty configuration.
    ///
    /// # Errors
    /// `VALIDATION_FAILED` when the record is not a Twilio voice configuration (another
    /// carrier's record, a damaged row). The message quotes none of its values: they may
    /// be URLs with credentials in them.
    pub fn from_routing(routing: &NumberRouting) -> Result<Self, ProviderError> {
        if routing.0.is_null() {
            return Ok(Self::default());
        }
        Self::deserialize(&routing.0).map_err(|_| {
            tracing::warn!("a number's previous routing is not a Twilio voice configuration");
            ProviderError::new(
                ErrorCode::ValidationFailed,
                "previousRouting: not a Twilio voice configuration record (written by another \
                 carrier's adapter, or damaged)",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> VoiceConfig {
        VoiceConfig {
            voice_url: Some("https://u:p@example.com/voice".into()),
            voice_method: Some("GET".into()),
            voice_fallback_url: None,
            voice_fallback_method: Some("POST".into()),
            voice_application_sid: Some(
                ApplicationSid::parse(&format!("AP{}", "a".repeat(32))).unwrap(),
            ),
            status_callback: Some("https://example.com/status".into()),
        }
    }

    #[test]
    fn the_record_is_the_camel_case_json_of_earlier_releases() {
        let stored = serde_json::json!({
            "voiceUrl": "https://u:p@example.com/voice",
            "voiceMethod": "GET",
            "voiceFallbackUrl": null,
            "voiceFallbackMethod": "POST",
            "voiceApplicationSid": format!("AP{}", "a".repeat(32)),
            "statusCallback": "https://example.com/status",
        });
        assert_eq!(full().to_routing().0, stored);
        assert_eq!(
            VoiceConfig::from_routing(&NumberRouting(stored)).unwrap(),
            full()
        );
    }

    #[test]
    fn nothing_recorded_is_an_empty_configuration() {
        assert_eq!(
            VoiceConfig::from_routing(&NumberRouting::none()).unwrap(),
            VoiceConfig::default()
        );
        assert_eq!(
            VoiceConfig::from_routing(&VoiceConfig::default().to_routing()).unwrap(),
            VoiceConfig::default()
        );
    }

    #[test]
    fn another_carriers_record_is_refused_without_quoting_it() {
        for bad in [
            serde_json::json!({"connectionId": "secret-connection-1234"}),
            serde_json::json!({"voiceUrl": 7}),
            serde_json::json!({"voiceApplicationSid": "secret-app"}),
            serde_json::json!("secret-string"),
            serde_json::json!([1, 2]),
        ] {
            let e = VoiceConfig::from_routing(&NumberRouting(bad.clone())).unwrap_err();
            assert_eq!(e.code, ErrorCode::ValidationFailed, "{bad}");
            assert!(!e.message.contains("secret"), "{}", e.message);
            assert!(e.message.starts_with("previousRouting"), "{}", e.message);
        }
    }
}
