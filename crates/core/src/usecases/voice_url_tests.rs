//! Voice-URL mode in the use cases, against the fakes (no LiveKit: its half is skipped).

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::super::fakes::{FakeCarrier, MemoryStore, account};
use super::super::*;
use super::{actions, creds};
use crate::ids::CarrierNumberId;
use crate::model::{Actor, ConnectionStatus};
use crate::phone::E164;
use crate::ports::CredentialInput;

const PUBLIC: &str = "https://tl.example.com";
const TOKEN: &str = "auth-token-of-the-account";

struct Voice {
    onboarding: Onboarding,
    carrier: FakeCarrier,
    store: MemoryStore,
    numbers: Vec<CarrierNumberId>,
    customer: CustomerId,
    actor: Actor,
}

async fn voice_world(public_url: Option<&str>, trunking: bool, token: Option<&str>) -> Voice {
    let (carrier, numbers) = FakeCarrier::with_numbers(2);
    carrier.state().trunking_not_enabled = !trunking;
    let store = MemoryStore::default();
    let mut carriers: HashMap<ProviderKind, Arc<dyn crate::ports::CarrierProvider>> =
        HashMap::new();
    carriers.insert(ProviderKind::Twilio, Arc::new(carrier.clone()));
    let ports = store.onboarding_ports(carriers, None);
    let settings = OnboardingSettings {
        default_sip_target: Some(SipTarget::parse("sip:ingress.example:5060").unwrap()),
        public_url: public_url.map(str::to_owned),
        ..OnboardingSettings::default()
    };
    let v = Voice {
        onboarding: Onboarding::new(ports, settings),
        carrier,
        store,
        numbers,
        customer: CustomerId::parse("trial").unwrap(),
        actor: Actor {
            subject: "user-1".into(),
            role: "customer".into(),
        },
    };
    v.onboarding
        .save_credentials(&v.actor, &v.customer, ProviderKind::Twilio, &creds(), None)
        .await
        .unwrap();
    let mut input = CredentialInput::default();
    if let Some(t) = token {
        input
            .secrets
            .insert("authToken".into(), SecretString::from(t.to_owned()));
    }
    let secret = v
        .onboarding
        .parse_webhook_secret(ProviderKind::Twilio, &input)
        .unwrap();
    v.onboarding
        .save_webhook_secret(&v.customer, ProviderKind::Twilio, secret.as_ref())
        .await
        .unwrap();
    v
}

impl Voice {
    async fn connect(&self, mode: Option<ConnectMode>) -> Result<ConnectOutcome, Error> {
        self.onboarding
            .connect(
                &self.actor,
                &self.customer,
                ProviderKind::Twilio,
                &self.numbers[0],
                ConnectRequest {
                    mode,
                    ..ConnectRequest::default()
                },
                None,
            )
            .await
    }

    fn e164(&self) -> E164 {
        self.carrier.state().numbers[0].e164.clone()
    }

    async fn answer(&self, token: &str) -> Result<VoiceAnswer, (Error, Option<VoiceRefusal>)> {
        let token = token.to_owned();
        let signed_by = move |t: &SecretString| t.expose_secret() == token;
        self.onboarding
            .answer_voice_call(ProviderKind::Twilio, &account(), &self.e164(), &signed_by)
            .await
    }
}

fn webhook() -> String {
    format!("{PUBLIC}/telephony/providers/twilio/voice")
}

#[tokio::test]
async fn auto_without_trunking_points_the_voice_url_and_disconnect_restores_it() {
    let v = voice_world(Some(PUBLIC), false, Some(TOKEN)).await;
    let out = v.connect(Some(ConnectMode::Auto)).await.unwrap();
    assert_eq!(out.mode, ConnectMode::VoiceUrl);
    assert_eq!(out.connection.status, ConnectionStatus::Connected);
    assert_eq!(out.connection.route_id, None);
    assert_eq!(
        actions(&out.steps, StepKind::VoiceUrl),
        [StepAction::Updated]
    );
    assert_eq!(
        actions(&out.steps, StepKind::SipCredentials),
        [StepAction::Created]
    );
    {
        let s = v.carrier.state();
        assert!(
            s.trunks.is_empty() && s.urls.is_empty(),
            "no trunk in this mode"
        );
        assert_eq!(s.numbers[0].routing.0["voiceUrl"], webhook().as_str());
    }
    assert_eq!(
        out.connection.previous_routing.as_ref().unwrap().0["voiceUrl"],
        "https://old.example/0"
    );
    // The stored password is sealed and never in the audit trail.
    let binding = v.store.tables().voice_bindings[0].clone();
    assert_eq!(binding.voice_url, webhook());
    // The fake vault seals as `<context>|<secret>`.
    let sealed = String::from_utf8(binding.sealed_sip_password.0.clone()).unwrap();
    let password = sealed.rsplit('|').next().unwrap().to_owned();
    assert_eq!(password.len(), 64);
    let audit = v.store.tables().audit.clone();
    let connected = audit.iter().rev().find(|e| e.details["mode"] == "voiceUrl");
    assert!(connected.is_some(), "the audit trail records the mode");
    assert!(
        audit
            .iter()
            .all(|e| !e.details.to_string().contains(&password))
    );
    assert!(!format!("{out:?}").contains(&password));

    // A rerun writes nothing and keeps the credentials.
    let writes = v.carrier.writes();
    let again = v.connect(None).await.unwrap();
    assert_eq!(v.carrier.writes(), writes);
    assert_eq!(again.mode, ConnectMode::VoiceUrl);
    assert_eq!(
        actions(&again.steps, StepKind::SipCredentials),
        [StepAction::Reused]
    );
    assert_eq!(v.store.tables().voice_bindings[0], binding);

    // Status: the mode; then drift once the URL is changed at the carrier.
    let status = v
        .onboarding
        .status(&v.customer, ProviderKind::Twilio, &v.numbers[0])
        .await
        .unwrap();
    assert_eq!(status.mode, ConnectMode::VoiceUrl);
    assert!(status.drifts.is_empty(), "{:?}", status.drifts);
    v.carrier.state().numbers[0].routing =
        crate::model::NumberRouting(serde_json::json!({"voiceUrl": "https://x.example/"}));
    let status = v
        .onboarding
        .status(&v.customer, ProviderKind::Twilio, &v.numbers[0])
        .await
        .unwrap();
    let kinds: Vec<_> = status.drifts.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, ["voice_url_changed"]);
    v.connect(None).await.unwrap();

    let d = v
        .onboarding
        .disconnect(
            &v.actor,
            &v.customer,
            ProviderKind::Twilio,
            &v.numbers[0],
            false,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        actions(&d.steps, StepKind::VoiceConfig),
        [StepAction::Restored]
    );
    assert_eq!(
        v.carrier.state().numbers[0].routing.0["voiceUrl"],
        "https://old.example/0"
    );
}

#[tokio::test]
async fn auto_with_trunking_is_trunk_and_a_live_connection_keeps_its_mode() {
    let v = voice_world(Some(PUBLIC), true, Some(TOKEN)).await;
    let out = v.connect(Some(ConnectMode::Auto)).await.unwrap();
    assert_eq!(out.mode, ConnectMode::Trunk);
    assert_eq!(v.carrier.state().trunks.len(), 1);
    let e = v.connect(Some(ConnectMode::VoiceUrl)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Conflict);
    assert!(e.message.contains("disconnect it first"), "{}", e.message);
}

#[tokio::test]
async fn voice_url_mode_needs_a_public_url_and_a_webhook_secret() {
    let v = voice_world(None, false, Some(TOKEN)).await;
    let e = v.connect(Some(ConnectMode::VoiceUrl)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotConfigured);
    assert!(e.message.contains("TRUNKLINE_PUBLIC_URL"));
    let v = voice_world(Some(PUBLIC), false, None).await;
    let e = v.connect(Some(ConnectMode::VoiceUrl)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationFailed);
    assert!(e.message.contains("authToken"), "{}", e.message);
    assert_eq!(v.carrier.writes(), 0, "nothing changed at the carrier");
}

#[tokio::test]
async fn a_carrier_without_voice_urls_is_refused_first_and_by_name() {
    // No public URL and no webhook secret either: the carrier's inability is what to fix.
    let v = voice_world(None, false, None).await;
    v.carrier.state().no_voice_url = true;
    let e = v.connect(Some(ConnectMode::VoiceUrl)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationFailed);
    assert!(
        e.message.contains("cannot be connected by voice URL") && e.message.contains("trunk"),
        "{}",
        e.message
    );
    assert_eq!(v.carrier.writes(), 0, "nothing changed at the carrier");
}

#[tokio::test]
async fn the_webhook_answers_from_one_read_with_the_owners_secret() {
    let v = voice_world(Some(PUBLIC), false, Some(TOKEN)).await;
    // Not connected yet: signed, so answered, with a rejection.
    assert!(matches!(v.answer(TOKEN).await, Ok(VoiceAnswer::Reject)));
    v.connect(Some(ConnectMode::VoiceUrl)).await.unwrap();
    let reads = v.store.calls_to("voice_route");
    match v.answer(TOKEN).await {
        Ok(VoiceAnswer::Dial { sip_uri, auth, .. }) => {
            assert_eq!(
                sip_uri,
                format!("sip:{}@ingress.example:5060;transport=tcp", v.e164())
            );
            let b = v.store.tables().voice_bindings[0].clone();
            assert_eq!(auth.username, b.sip_username);
            assert_eq!(auth.password.expose_secret().len(), 64);
        }
        other => panic!("expected a dial, got {other:?}"),
    }
    assert_eq!(v.store.calls_to("voice_route"), reads + 1);
    let (e, why) = v.answer("another-token").await.unwrap_err();
    assert_eq!(
        (e.code, why),
        (ErrorCode::Forbidden, Some(VoiceRefusal::BadSignature))
    );
    let stranger = crate::ids::CarrierAccountId::parse(&format!("AC{}", "9".repeat(32))).unwrap();
    let (e, why) = v
        .onboarding
        .answer_voice_call(ProviderKind::Twilio, &stranger, &v.e164(), &|_| true)
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, why),
        (ErrorCode::Forbidden, Some(VoiceRefusal::UnknownAccount))
    );
}

#[tokio::test]
async fn a_number_on_a_trunk_is_not_taken_without_force() {
    let v = voice_world(Some(PUBLIC), false, Some(TOKEN)).await;
    let foreign = v.carrier.add_foreign_trunk();
    v.carrier.state().numbers[0].route_id = Some(foreign.clone());
    let e = v.connect(Some(ConnectMode::VoiceUrl)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NumberInUse);
    let forced = v
        .onboarding
        .connect(
            &v.actor,
            &v.customer,
            ProviderKind::Twilio,
            &v.numbers[0],
            ConnectRequest {
                mode: Some(ConnectMode::VoiceUrl),
                force: true,
                ..ConnectRequest::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        actions(&forced.steps, StepKind::Attachment),
        [StepAction::Deleted]
    );
    assert_eq!(v.carrier.state().numbers[0].route_id, None);
}
