//! Voice-URL mode: for carrier accounts without SIP trunking (Twilio trial accounts, some
//! subaccounts, keys that may not use trunking).
//!
//! Instead of attaching the number to a SIP route, connect points the number's voice URL at
//! trunkline's one generic webhook (`{public URL}/telephony/providers/{provider}/voice`); the
//! webhook answers each call with an instruction to dial the connection's LiveKit SIP target,
//! with SIP digest credentials that only this connection's LiveKit inbound trunk accepts.
//! Disconnect puts the number's previous voice configuration back. The webhook itself (its
//! secret, the answer to a call) is in `voice_webhook`.
//!
//! Connect and disconnect call in here through two small hooks; the trunk algorithm in
//! `connect.rs` is unchanged.

use chrono::Utc;
use futures::lock::Mutex;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::Onboarding;
use super::connect::{ConnectOutcome, HELD_ELSEWHERE, Job, Progress, pending_connection};
use super::steps::{Step, StepAction, StepKind};
use crate::error::{Error, ErrorCode};
use crate::ids::ProviderKind;
use crate::model::{
    CarrierCredentials, ConnectionStatus, NumberConnection, NumberRouting, SealContext,
};
use crate::ports::{Capability, CarrierNumber, CarrierProvider, SipDigestAuth, VoiceBinding};

/// How a number reaches LiveKit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConnectMode {
    /// The carrier's SIP route (Twilio Elastic SIP trunk, Telnyx FQDN connection).
    #[default]
    Trunk,
    /// The number's voice URL, answered by trunkline's generic voice webhook.
    VoiceUrl,
    /// `voiceUrl` when the carrier reports trunking forbidden or not enabled for the
    /// credentials, else `trunk`. Only a request says `auto`; a connection is in one of the
    /// two others.
    Auto,
}

impl ConnectMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trunk => "trunk",
            Self::VoiceUrl => "voiceUrl",
            Self::Auto => "auto",
        }
    }
}

/// The path of the generic voice webhook of `provider`, under the public URL.
pub fn voice_webhook_path(provider: ProviderKind) -> String {
    format!("/telephony/providers/{provider}/voice")
}

/// The URL a number's voice URL points at: the configured public URL (without a trailing
/// slash) and [`voice_webhook_path`].
pub fn voice_webhook_url(public_url: &str, provider: ProviderKind) -> String {
    format!(
        "{}{}",
        public_url.trim_end_matches('/'),
        voice_webhook_path(provider)
    )
}

impl Onboarding {
    /// Connect's hook: under the number's lease, pick the mode (the request's, else the
    /// stored connection's, else `trunk`; `auto` asks the carrier) and run that mode's
    /// reconcile. A live connection does not change mode: disconnect it first.
    pub(super) async fn connect_in_mode(&self, job: &Job<'_>) -> Result<ConnectOutcome, Error> {
        let stored = self
            .ports
            .connections
            .get_connection(job.customer, job.provider, job.number_id)
            .await?;
        let binding = match &stored {
            Some(c) => self.ports.voice.get_voice_binding(c.id).await?,
            None => None,
        };
        let live = stored
            .as_ref()
            .is_some_and(|c| c.status != ConnectionStatus::Disconnected);
        let stored_mode = if binding.is_some() {
            ConnectMode::VoiceUrl
        } else {
            ConnectMode::Trunk
        };
        let mode = match job.req.mode {
            None if stored.is_some() => stored_mode,
            None => ConnectMode::Trunk,
            Some(ConnectMode::Auto) if live => stored_mode,
            Some(ConnectMode::Auto) => self.auto_mode(job).await?,
            Some(m) => m,
        };
        if live && mode != stored_mode {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!(
                    "mode: the number is connected in mode \"{}\"; disconnect it first to \
                     connect it in mode \"{}\"",
                    stored_mode.as_str(),
                    mode.as_str()
                ),
            ));
        }
        if mode == ConnectMode::VoiceUrl {
            return Box::pin(self.connect_voice_url(job, stored, binding)).await;
        }
        if let (Some(c), Some(_)) = (&stored, &binding) {
            // A disconnected voice-URL connection reconnected through a trunk.
            self.ports.voice.delete_voice_binding(c.id).await?;
        }
        Box::pin(self.connect_locked(job)).await
    }

    /// `auto`: the carrier's own verdict on trunking for these credentials.
    async fn auto_mode(&self, job: &Job<'_>) -> Result<ConnectMode, Error> {
        let report = job.carrier.verify(job.creds).await?;
        Ok(if report.capabilities.trunking == Capability::Available {
            ConnectMode::Trunk
        } else {
            ConnectMode::VoiceUrl
        })
    }

    async fn connect_voice_url(
        &self,
        job: &Job<'_>,
        stored: Option<NumberConnection>,
        binding: Option<VoiceBinding>,
    ) -> Result<ConnectOutcome, Error> {
        let Job {
            carrier,
            creds,
            customer,
            provider,
            number_id,
            req,
            ..
        } = *job;
        if !carrier.supports_voice_url() {
            return Err(Error::new(
                ErrorCode::ValidationFailed,
                format!(
                    "mode: {provider} numbers cannot be connected by voice URL; connect with \
                     mode \"trunk\""
                ),
            ));
        }
        let url = self.voice_url(provider)?;
        if !self
            .ports
            .voice
            .has_webhook_secret(customer, provider)
            .await?
        {
            return Err(Error::new(
                ErrorCode::ValidationFailed,
                "mode: voice-URL mode needs the secret the carrier signs its webhooks with \
                 (Twilio: the account's auth token); save the credentials again with it \
                 (authToken)",
            ));
        }
        let desired = self.desired(req, stored.as_ref())?;
        let fresh = stored.is_none();
        let number = carrier.fetch_number(creds, number_id).await?;
        if !number.voice_capable {
            return Err(Error::new(
                ErrorCode::ValidationFailed,
                "this number cannot receive voice calls",
            ));
        }
        self.refuse_numbers_held_elsewhere(customer, stored.as_ref(), &number.e164)
            .await?;
        if let Some(route) = &number.route_id
            && !req.force
        {
            return Err(Error::new(
                ErrorCode::NumberInUse,
                format!(
                    "{HELD_ELSEWHERE}: it is on SIP trunk {route}, which overrides its voice URL; \
                     connect with mode \"trunk\", or pass force=true to take it off the trunk"
                ),
            ));
        }
        let pointed = carrier.routing_points_at(&number.routing, &url);

        let now = Utc::now();
        let old_ctx = stored.as_ref().map(seal_context);
        let (mut conn, was_disconnected) = pending_connection(job, stored, &number, &desired, now);
        conn.route_targets.clear();
        let mut steps = Vec::new();
        // Pointing the voice URL overrides the number's own configuration: remember it
        // first, unless it points at trunkline already (then what we hold is the original).
        if (conn.previous_routing.is_none() || was_disconnected) && !pointed {
            conn.previous_routing = Some(number.routing.clone());
            steps.push(
                Step::new(StepKind::VoiceConfig, StepAction::Created, None).detail("recorded"),
            );
        } else {
            steps.push(
                Step::new(StepKind::VoiceConfig, StepAction::Reused, None)
                    .detail("the configuration recorded before trunkline pointed the voice URL"),
            );
        }
        conn.updated_at = now;
        self.ports.connections.save_connection(&conn).await?;

        let (auth, auth_step) = self
            .sip_credentials(&conn, old_ctx.as_ref(), binding, &url)
            .await?;
        steps.push(auth_step);

        let progress = Progress {
            onboarding: self,
            conn: Mutex::new(conn),
        };
        let routing_changed = desired.changes.contains(&"routing");
        let result = async {
            // LiveKit first: the carrier sends calls through trunkline only once LiveKit
            // accepts them.
            let mut steps = self
                .livekit_half(&number, fresh, routing_changed, Some(auth), &progress)
                .await?;
            steps.extend(self.point_voice_url(job, &number, &url, pointed).await?);
            Ok::<_, Error>(steps)
        }
        .await;
        let more = match result {
            Ok(s) => s,
            Err(e) => {
                progress
                    .update(|c| {
                        c.status = ConnectionStatus::Failed;
                        c.last_error = Some(format!("{}: {}", e.code, e.message));
                    })
                    .await?;
                return Err(e);
            }
        };
        steps.extend(more);
        progress
            .update(|c| {
                c.status = ConnectionStatus::Connected;
                c.last_error = None;
                c.route_id = None;
                c.route_created = false;
                if c.connected_at.is_none() || was_disconnected {
                    c.connected_at = Some(Utc::now());
                }
            })
            .await?;
        Ok(ConnectOutcome {
            connection: progress.snapshot().await,
            steps,
            changes: desired.changes,
            mode: ConnectMode::VoiceUrl,
        })
    }

    /// The public URL's voice webhook for `provider`, or why there is none.
    fn voice_url(&self, provider: ProviderKind) -> Result<String, Error> {
        let public = self.settings.public_url.as_deref().ok_or_else(|| {
            Error::new(
                ErrorCode::NotConfigured,
                "voice-URL mode needs the URL the carrier reaches trunkline at \
                 (TRUNKLINE_PUBLIC_URL), which this server does not have",
            )
        })?;
        Ok(voice_webhook_url(public, provider))
    }

    /// The connection's SIP digest credentials: the stored ones when they still open, else
    /// new random ones. Stored (sealed) before LiveKit is asked to require them, so a retry
    /// after any failure uses the same.
    async fn sip_credentials(
        &self,
        conn: &NumberConnection,
        old_ctx: Option<&SealContext>,
        binding: Option<VoiceBinding>,
        url: &str,
    ) -> Result<(SipDigestAuth, Step), Error> {
        let ctx = seal_context(conn);
        let kept = match (&binding, old_ctx) {
            (Some(b), Some(old)) => {
                match self.ports.vault.open(&b.sealed_sip_password, old).await {
                    Ok(password) => Some(SipDigestAuth {
                        username: b.sip_username.clone(),
                        password,
                    }),
                    Err(e) => {
                        tracing::warn!(
                            connection = %conn.id,
                            error = %e,
                            "voice URL: stored SIP credentials do not open; new ones are made"
                        );
                        None
                    }
                }
            }
            _ => None,
        };
        let (auth, step) = match kept {
            Some(auth) => (
                auth,
                Step::new(StepKind::SipCredentials, StepAction::Reused, None)
                    .detail("generated earlier, sealed; never shown"),
            ),
            None => (
                generate_sip_credentials(),
                Step::new(StepKind::SipCredentials, StepAction::Created, None)
                    .detail("generated, sealed; never shown"),
            ),
        };
        let unchanged = step.action == StepAction::Reused
            && binding
                .as_ref()
                .is_some_and(|b| b.voice_url == url && old_ctx == Some(&ctx));
        if !unchanged {
            let now = Utc::now();
            let sealed = self.ports.vault.seal(&auth.password, &ctx).await?;
            self.ports
                .voice
                .save_voice_binding(&VoiceBinding {
                    connection_id: conn.id,
                    voice_url: url.to_owned(),
                    sip_username: auth.username.clone(),
                    sealed_sip_password: sealed,
                    created_at: binding.as_ref().map_or(now, |b| b.created_at),
                    updated_at: now,
                })
                .await?;
        }
        Ok((auth, step))
    }

    /// The carrier side: off a trunk when forced (checked earlier), then the voice URL.
    async fn point_voice_url(
        &self,
        job: &Job<'_>,
        number: &CarrierNumber,
        url: &str,
        pointed: bool,
    ) -> Result<Vec<Step>, Error> {
        let mut steps = Vec::new();
        if let Some(route) = &number.route_id {
            job.carrier
                .detach_number(job.creds, route, job.number_id)
                .await?;
            steps.push(
                Step::new(
                    StepKind::Attachment,
                    StepAction::Deleted,
                    Some(route.to_string()),
                )
                .detail("taken off the trunk (forced): a trunk overrides the voice URL"),
            );
        }
        if pointed && number.route_id.is_none() {
            steps.push(
                Step::new(StepKind::VoiceUrl, StepAction::Reused, None).detail(url.to_owned()),
            );
        } else {
            job.carrier
                .set_voice_url(job.creds, job.number_id, url)
                .await?;
            steps.push(
                Step::new(StepKind::VoiceUrl, StepAction::Updated, None).detail(url.to_owned()),
            );
        }
        Ok(steps)
    }

    /// Disconnect's hook, after the number was read: for a voice-URL connection, put the
    /// number's previous voice configuration back (whatever `restoreVoiceConfig` says: the
    /// voice URL left behind would only reject calls), unless the voice URL was changed at
    /// the carrier since. `None` for a trunk connection.
    pub(super) async fn disconnect_voice_url(
        &self,
        carrier: &dyn CarrierProvider,
        creds: &CarrierCredentials,
        conn: &NumberConnection,
        number: Option<&CarrierNumber>,
    ) -> Result<Option<Vec<Step>>, Error> {
        let Some(binding) = self.ports.voice.get_voice_binding(conn.id).await? else {
            return Ok(None);
        };
        let Some(number) = number else {
            return Ok(Some(Vec::new()));
        };
        if !carrier.routing_points_at(&number.routing, &binding.voice_url) {
            return Ok(Some(vec![
                Step::new(StepKind::VoiceConfig, StepAction::Skipped, None).detail(
                    "the number's voice URL was changed at the carrier since connect; it is left \
                     as it is",
                ),
            ]));
        }
        let previous = conn
            .previous_routing
            .clone()
            .unwrap_or_else(NumberRouting::none);
        carrier
            .restore_routing(creds, &number.id, &previous)
            .await?;
        Ok(Some(vec![Step::new(
            StepKind::VoiceConfig,
            StepAction::Restored,
            None,
        )]))
    }

    /// Status's hook: the connection's mode, and drift of a voice-URL connection (the voice
    /// URL changed at the carrier, the number put on a trunk).
    pub(super) async fn voice_url_status(
        &self,
        status: &mut super::NumberStatus,
        carrier: Option<&dyn CarrierProvider>,
    ) -> Result<(), Error> {
        let Some(conn) = &status.connection else {
            return Ok(());
        };
        let Some(binding) = self.ports.voice.get_voice_binding(conn.id).await? else {
            return Ok(());
        };
        status.mode = ConnectMode::VoiceUrl;
        if conn.status != ConnectionStatus::Connected {
            return Ok(());
        }
        let (Some(number), Some(carrier)) = (status.number.ok(), carrier) else {
            return Ok(());
        };
        let mut drifts = Vec::new();
        if !carrier.routing_points_at(&number.routing, &binding.voice_url) {
            drifts.push(super::Drift::new(
                super::DriftKind::VoiceUrlChanged,
                format!(
                    "the number's voice URL no longer points at trunkline ({}, POST): it was \
                     changed at the carrier, so calls do not reach LiveKit; connect again to \
                     point it back",
                    binding.voice_url
                ),
            ));
        }
        if let Ok(current) = self.voice_url(conn.provider)
            && current != binding.voice_url
        {
            drifts.push(super::Drift::new(
                super::DriftKind::PublicUrlChanged,
                format!(
                    "the number points at {}, but this server's public URL makes it {current}: \
                     signatures are checked against the new URL, so calls are refused; connect \
                     again to re-point the number",
                    binding.voice_url
                ),
            ));
        }
        if let Some(route) = &number.route_id {
            drifts.push(super::Drift::new(
                super::DriftKind::NumberOnTrunk,
                format!(
                    "the number was put on SIP trunk {route}, which overrides its voice URL; \
                     take it off the trunk, or disconnect and connect in mode \"trunk\""
                ),
            ));
        }
        // The trunk-mode checks know nothing of voice URLs: in this mode "not on trunkline's
        // trunk" is the point, not a drift.
        status
            .drifts
            .retain(|d| d.kind != super::DriftKind::NumberNotOnTrunk);
        status.drifts.extend(drifts);
        Ok(())
    }
}

/// What a connection's SIP password is sealed with.
fn seal_context(conn: &NumberConnection) -> SealContext {
    SealContext {
        customer_id: conn.customer_id.clone(),
        integration_id: conn.integration_id,
        provider: conn.provider,
    }
}

/// Fresh SIP digest credentials: a username that names nothing and a 244-bit random password
/// (two v4 UUIDs, from the operating system's generator).
fn generate_sip_credentials() -> SipDigestAuth {
    let username = format!("tl{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let password = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    SipDigestAuth {
        username,
        password: SecretString::from(password),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_url_is_the_public_url_and_the_providers_path() {
        assert_eq!(
            voice_webhook_url("https://tl.example.com/", ProviderKind::Twilio),
            "https://tl.example.com/telephony/providers/twilio/voice"
        );
        assert_eq!(
            voice_webhook_url("https://proxy.example.com/trunkline", ProviderKind::Twilio),
            "https://proxy.example.com/trunkline/telephony/providers/twilio/voice"
        );
    }

    #[test]
    fn generated_credentials_differ_and_are_long() {
        use secrecy::ExposeSecret;
        let (a, b) = (generate_sip_credentials(), generate_sip_credentials());
        assert_ne!(a.username, b.username);
        assert_ne!(a.password.expose_secret(), b.password.expose_secret());
        assert_eq!(a.password.expose_secret().len(), 64);
        assert!(!format!("{a:?}").contains(a.password.expose_secret()));
    }

    #[test]
    fn modes_are_camel_case() {
        let m: ConnectMode = serde_json::from_str("\"voiceUrl\"").unwrap();
        assert_eq!(m, ConnectMode::VoiceUrl);
        assert_eq!(ConnectMode::default(), ConnectMode::Trunk);
    }
}
