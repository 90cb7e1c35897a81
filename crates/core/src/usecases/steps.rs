//! The steps connect and disconnect report, in their answer and in the audit trail.

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepAction {
    Created,
    Reused,
    Updated,
    Deleted,
    /// The number was taken off another trunk first.
    Moved,
    Restored,
    /// Not applicable or not configured (the detail says why).
    Skipped,
}

/// What a [`Step`] acted on: a closed set, serialized as its camel-case name (`originationUrl`),
/// which is what clients and the audit trail see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StepKind {
    /// The carrier trunk (Twilio Elastic SIP trunk, Telnyx FQDN connection).
    Trunk,
    /// One origination URL (target) of the trunk.
    OriginationUrl,
    /// The number's attachment to the trunk.
    Attachment,
    /// The number's own voice configuration, recorded before and restored after.
    VoiceConfig,
    /// The connection's LiveKit inbound trunk.
    LivekitTrunk,
    /// The connection's LiveKit dispatch rule.
    LivekitRule,
    /// The number's voice URL (voice-URL mode).
    VoiceUrl,
    /// The SIP digest credentials of voice-URL mode.
    SipCredentials,
    /// The carrier termination of the outbound half.
    Termination,
    /// The LiveKit outbound trunk of the outbound half.
    LivekitOutboundTrunk,
}

impl StepKind {
    /// The wire form, e.g. `originationUrl`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Trunk => "trunk",
            Self::OriginationUrl => "originationUrl",
            Self::Attachment => "attachment",
            Self::VoiceConfig => "voiceConfig",
            Self::LivekitTrunk => "livekitTrunk",
            Self::LivekitRule => "livekitRule",
            Self::VoiceUrl => "voiceUrl",
            Self::SipCredentials => "sipCredentials",
            Self::Termination => "termination",
            Self::LivekitOutboundTrunk => "livekitOutboundTrunk",
        }
    }
}

/// One step of connect or disconnect, for the answer and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub step: StepKind,
    pub action: StepAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Step {
    pub(in crate::usecases) fn new(step: StepKind, action: StepAction, id: Option<String>) -> Self {
        Self {
            step,
            action,
            id,
            detail: None,
        }
    }

    pub(in crate::usecases) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}
