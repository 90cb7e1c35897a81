//! Drift: where what trunkline stored and what the carrier or LiveKit holds differ.

use serde::Serialize;

/// What a [`Drift`] is about: a closed set, serialized as its snake-case name
/// (`number_not_on_trunk`), which is what clients, the audit trail and the metrics see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    ConnectIncomplete,
    CredentialsInvalid,
    CredentialsMissing,
    LivekitNotConfigured,
    LivekitRuleAgentMismatch,
    LivekitRuleMissing,
    LivekitRuleTrunkMismatch,
    LivekitTrunkMissing,
    LivekitTrunkNumberMismatch,
    NumberMissing,
    NumberNotOnTrunk,
    NumberOnTrunk,
    OriginationUrlChanged,
    OriginationUrlMissing,
    OriginationUrlUnexpected,
    OriginationUrlUnrecorded,
    OrphanTrunk,
    PublicUrlChanged,
    TrunkMissing,
    VoiceUrlChanged,
}

impl DriftKind {
    /// The wire form, e.g. `number_not_on_trunk`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ConnectIncomplete => "connect_incomplete",
            Self::CredentialsInvalid => "credentials_invalid",
            Self::CredentialsMissing => "credentials_missing",
            Self::LivekitNotConfigured => "livekit_not_configured",
            Self::LivekitRuleAgentMismatch => "livekit_rule_agent_mismatch",
            Self::LivekitRuleMissing => "livekit_rule_missing",
            Self::LivekitRuleTrunkMismatch => "livekit_rule_trunk_mismatch",
            Self::LivekitTrunkMissing => "livekit_trunk_missing",
            Self::LivekitTrunkNumberMismatch => "livekit_trunk_number_mismatch",
            Self::NumberMissing => "number_missing",
            Self::NumberNotOnTrunk => "number_not_on_trunk",
            Self::NumberOnTrunk => "number_on_trunk",
            Self::OriginationUrlChanged => "origination_url_changed",
            Self::OriginationUrlMissing => "origination_url_missing",
            Self::OriginationUrlUnexpected => "origination_url_unexpected",
            Self::OriginationUrlUnrecorded => "origination_url_unrecorded",
            Self::OrphanTrunk => "orphan_trunk",
            Self::PublicUrlChanged => "public_url_changed",
            Self::TrunkMissing => "trunk_missing",
            Self::VoiceUrlChanged => "voice_url_changed",
        }
    }
}

impl std::fmt::Display for DriftKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A difference between what trunkline stored and what the carrier or LiveKit holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    /// Stable machine-readable kind, e.g. `number_not_on_trunk`.
    pub kind: DriftKind,
    pub message: String,
}

impl Drift {
    pub(super) fn new(kind: DriftKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}
