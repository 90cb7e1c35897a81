//! The adapter against the LiveKit emulator, over real HTTP.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;
use trunkline_core::model::{DispatchMode, RoutingPolicy, RoutingPolicyParts};
use trunkline_core::ports::{DispatchRuleSpec, InboundTrunkSpec, SipPlatform};
use trunkline_core::{ConnectionId, DispatchRuleId, E164, ErrorCode, RoomName, SipTrunkId};
use trunkline_livekit::{LiveKitConfig, LiveKitPlatform, MediaEncryption};
use trunkline_testkit::livekit::{Fault, LiveKitEmulator, Method, MethodSelector, proto};

fn config(emu: &LiveKitEmulator) -> LiveKitConfig {
    LiveKitConfig::new(
        emu.url(),
        emu.api_key(),
        SecretString::from(emu.api_secret().to_owned()),
    )
}

fn platform_from(config: LiveKitConfig) -> LiveKitPlatform {
    let _ = rustls::crypto::ring::default_provider().install_default();
    LiveKitPlatform::new(config).unwrap()
}

fn platform(emu: &LiveKitEmulator) -> LiveKitPlatform {
    platform_from(config(emu))
}

fn e164(raw: &str) -> E164 {
    E164::parse(raw).unwrap()
}

fn trunk_spec(number: &str) -> InboundTrunkSpec {
    let connection_id = ConnectionId::new();
    InboundTrunkSpec {
        connection_id,
        name: format!("trunkline {connection_id}"),
        number: e164(number),
        attributes: BTreeMap::new(),
        auth: None,
    }
}

fn rule_spec(
    trunk: &SipTrunkId,
    connection_id: ConnectionId,
    routing: RoutingPolicy,
) -> DispatchRuleSpec {
    DispatchRuleSpec {
        connection_id,
        name: format!("trunkline {connection_id}"),
        trunk_id: trunk.clone(),
        room_prefix: "call-".to_owned(),
        routing,
    }
}

fn webhook_routing(agent: &str) -> RoutingPolicy {
    RoutingPolicy::new(RoutingPolicyParts {
        agent_name: Some(agent.to_owned()),
        metadata: Some(r#"{"tier":"gold"}"#.to_owned()),
        attributes: BTreeMap::from([("plan".to_owned(), "pro".to_owned())]),
        dispatch_mode: DispatchMode::Webhook,
    })
    .unwrap()
}

fn writes(emu: &LiveKitEmulator) -> usize {
    emu.count(MethodSelector::Writes)
}

// --- inbound trunks ------------------------------------------------------------------------

#[tokio::test]
async fn a_trunk_accepts_exactly_the_number_and_is_found_again_without_writes() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    let spec = trunk_spec("+14155550100");

    let created = lk.ensure_inbound_trunk(&spec, None).await.unwrap();
    assert_eq!(created.numbers, ["+14155550100"]);
    assert_eq!(created.name, spec.name);
    let held = emu.trunks_for_number("+14155550100");
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].sip_trunk_id, created.id.as_str());
    assert!(
        held[0].metadata.contains(&spec.connection_id.to_string()),
        "{}",
        held[0].metadata
    );
    assert_eq!(emu.count(Method::CreateSipInboundTrunk), 1);

    // Found by the number filter (no stored id), and by the stored id: nothing written.
    let before = writes(&emu);
    let again = lk.ensure_inbound_trunk(&spec, None).await.unwrap();
    assert_eq!(again.id, created.id);
    let by_id = lk
        .ensure_inbound_trunk(&spec, Some(created.id.clone()))
        .await
        .unwrap();
    assert_eq!(by_id.id, created.id);
    assert_eq!(writes(&emu), before, "{:?}", emu.counts());
    assert_eq!(emu.trunks().len(), 1);
    let listed = emu
        .requests()
        .into_iter()
        .filter(|r| r.method == Some(Method::ListSipInboundTrunk))
        .count();
    assert!(listed >= 2, "found by listing with the number filter");
}

#[tokio::test]
async fn configuration_changes_update_the_trunk_in_place() {
    let emu = LiveKitEmulator::start();
    let spec = trunk_spec("+14155550101");
    let created = platform(&emu)
        .ensure_inbound_trunk(&spec, None)
        .await
        .unwrap();
    let stored = emu.trunk(created.id.as_str()).unwrap();
    assert!(stored.allowed_addresses.is_empty() && stored.auth_username.is_empty());

    let mut cfg = config(&emu);
    cfg.inbound.allowed_addresses = vec!["54.172.60.0/30".to_owned(), "54.244.51.0/30".to_owned()];
    cfg.inbound.auth_username = Some("carrier".to_owned());
    cfg.inbound.auth_password = Some(SecretString::from("digest-pass"));
    cfg.inbound.media_encryption = Some(MediaEncryption::Require);
    let secured = platform_from(cfg);
    let updated = secured
        .ensure_inbound_trunk(&spec, Some(created.id.clone()))
        .await
        .unwrap();
    assert_eq!(updated.id, created.id);
    assert_eq!(emu.count(Method::UpdateSipInboundTrunk), 1);
    assert_eq!(emu.count(Method::CreateSipInboundTrunk), 1);
    let stored = emu.trunk(created.id.as_str()).unwrap();
    assert_eq!(
        stored.allowed_addresses,
        ["54.172.60.0/30", "54.244.51.0/30"]
    );
    assert_eq!(
        (stored.auth_username.as_str(), stored.auth_password.as_str()),
        ("carrier", "digest-pass")
    );
    assert_eq!(
        stored.media.as_ref().and_then(|m| m.encryption),
        Some(proto::SipMediaEncryption::SipMediaEncryptRequire as i32)
    );

    // Reconnecting with the same configuration writes nothing more.
    secured
        .ensure_inbound_trunk(&spec, Some(created.id.clone()))
        .await
        .unwrap();
    assert_eq!(emu.count(Method::UpdateSipInboundTrunk), 1);

    // Fields trunkline does not manage survive its updates.
    let mut tuned = stored.clone();
    tuned.krisp_enabled = true;
    tuned.name = "renamed by hand".to_owned();
    emu.remove_trunk(created.id.as_str());
    emu.insert_trunk(tuned);
    secured
        .ensure_inbound_trunk(&spec, Some(created.id.clone()))
        .await
        .unwrap();
    let stored = emu.trunk(created.id.as_str()).unwrap();
    assert_eq!(stored.name, spec.name);
    assert!(stored.krisp_enabled);
}

#[tokio::test]
async fn a_number_on_a_trunk_trunkline_did_not_create_is_not_taken() {
    let emu = LiveKitEmulator::start();
    let foreign = emu.insert_trunk(proto::SipInboundTrunkInfo {
        name: "pbx trunk".to_owned(),
        numbers: vec!["+1 (415) 555-0102".to_owned()],
        ..Default::default()
    });
    let err = platform(&emu)
        .ensure_inbound_trunk(&trunk_spec("+14155550102"), None)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NumberInUse, "{err:?}");
    assert!(err.message.contains(&foreign), "{}", err.message);
    assert_eq!(writes(&emu), 0);

    // A trunk that accepts any number does not hold this one: trunkline creates its own.
    let emu = LiveKitEmulator::start();
    emu.insert_trunk(proto::SipInboundTrunkInfo {
        name: "catch-all".to_owned(),
        auth_username: "u".to_owned(),
        auth_password: "p".to_owned(),
        ..Default::default()
    });
    platform(&emu)
        .ensure_inbound_trunk(&trunk_spec("+14155550102"), None)
        .await
        .unwrap();
    assert_eq!(emu.trunks_for_number("+14155550102").len(), 1);
}

#[tokio::test]
async fn livekits_own_duplicate_number_check_is_a_conflict() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    // The connection's stored trunk is asked to take a number another trunk holds: LiveKit
    // itself refuses the update.
    let mine = lk
        .ensure_inbound_trunk(&trunk_spec("+14155550103"), None)
        .await
        .unwrap();
    emu.insert_trunk(proto::SipInboundTrunkInfo {
        name: "pbx".to_owned(),
        numbers: vec!["+14155550104".to_owned()],
        ..Default::default()
    });
    let mut spec = trunk_spec("+14155550104");
    spec.name = mine.name.clone();
    let err = lk
        .ensure_inbound_trunk(&spec, Some(mine.id.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err:?}");
    assert_eq!(err.provider_code.as_deref(), Some("invalid_argument"));
    assert!(
        err.message.contains("Conflicting inbound SIP Trunks"),
        "{}",
        err.message
    );
    assert!(
        !err.message.contains("4155550104"),
        "numbers are masked: {}",
        err.message
    );
    assert_eq!(
        emu.trunk(mine.id.as_str()).unwrap().numbers,
        ["+14155550103"]
    );
}

#[tokio::test]
async fn a_stored_trunk_deleted_behind_trunklines_back_is_recreated() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    let spec = trunk_spec("+14155550105");
    let first = lk.ensure_inbound_trunk(&spec, None).await.unwrap();
    assert!(lk.get_inbound_trunk(&first.id).await.unwrap().is_some());
    assert!(emu.remove_trunk(first.id.as_str()));
    assert_eq!(lk.get_inbound_trunk(&first.id).await.unwrap(), None);
    let second = lk
        .ensure_inbound_trunk(&spec, Some(first.id.clone()))
        .await
        .unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(emu.trunks_for_number("+14155550105").len(), 1);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_found_not_repeated() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    emu.inject(
        Method::CreateSipInboundTrunk,
        Fault::LoseAnswer {
            count: 1,
            status: 503,
        },
    );
    let spec = trunk_spec("+14155550106");
    let trunk = lk.ensure_inbound_trunk(&spec, None).await.unwrap();
    assert_eq!(emu.trunks().len(), 1);
    assert_eq!(emu.trunks()[0].sip_trunk_id, trunk.id.as_str());
    assert_eq!(emu.count(Method::CreateSipInboundTrunk), 1);

    emu.inject(
        Method::CreateSipDispatchRule,
        Fault::LoseAnswer {
            count: 1,
            status: 500,
        },
    );
    let rule = lk
        .ensure_dispatch_rule(
            &rule_spec(&trunk.id, spec.connection_id, webhook_routing("a")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(emu.rules().len(), 1);
    assert_eq!(emu.rules()[0].sip_dispatch_rule_id, rule.id.as_str());
}

#[tokio::test]
async fn deleting_a_trunk_removes_it_and_is_idempotent() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    let trunk = lk
        .ensure_inbound_trunk(&trunk_spec("+14155550107"), None)
        .await
        .unwrap();
    lk.delete_inbound_trunk(&trunk.id).await.unwrap();
    assert!(emu.trunks().is_empty());
    lk.delete_inbound_trunk(&trunk.id).await.unwrap();
    assert_eq!(emu.count(Method::DeleteSipTrunk), 2);
}

// --- dispatch rules ------------------------------------------------------------------------

#[tokio::test]
async fn a_rule_routes_the_trunk_into_individual_rooms_with_agents_only_in_rule_mode() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    let tspec = trunk_spec("+14155550110");
    let trunk = lk.ensure_inbound_trunk(&tspec, None).await.unwrap();
    let mut spec = rule_spec(
        &trunk.id,
        tspec.connection_id,
        webhook_routing("support-agent"),
    );

    let rule = lk.ensure_dispatch_rule(&spec, None).await.unwrap();
    assert_eq!(rule.trunk_ids, [trunk.id.as_str()]);
    assert_eq!(rule.room_prefix.as_deref(), Some("call-"));
    assert!(
        rule.agent_names.is_empty(),
        "webhook mode: trunkline dispatches, not the rule"
    );
    let stored = emu.rule(rule.id.as_str()).unwrap();
    assert!(stored.numbers.is_empty() && stored.inbound_numbers.is_empty());
    assert_eq!(
        stored.attributes.get("plan").map(String::as_str),
        Some("pro")
    );
    match stored.rule.and_then(|r| r.rule) {
        Some(proto::sip_dispatch_rule::Rule::DispatchRuleIndividual(i)) => {
            assert_eq!(i.room_prefix, "call-");
            assert!(i.pin.is_empty());
        }
        other => panic!("not an individual rule: {other:?}"),
    }

    // Same spec: found (by id and by trunk), nothing written.
    let before = writes(&emu);
    assert_eq!(
        lk.ensure_dispatch_rule(&spec, Some(rule.id.clone()))
            .await
            .unwrap()
            .id,
        rule.id
    );
    assert_eq!(
        lk.ensure_dispatch_rule(&spec, None).await.unwrap().id,
        rule.id
    );
    assert_eq!(writes(&emu), before);

    // Rule mode: the agent goes into the rule's room configuration, in place.
    spec.routing = RoutingPolicy::new(RoutingPolicyParts {
        dispatch_mode: DispatchMode::Rule,
        ..spec.routing.clone().into()
    })
    .unwrap();
    let ruled = lk
        .ensure_dispatch_rule(&spec, Some(rule.id.clone()))
        .await
        .unwrap();
    assert_eq!(ruled.id, rule.id);
    assert_eq!(ruled.agent_names, ["support-agent"]);
    let agents = emu
        .rule(rule.id.as_str())
        .unwrap()
        .room_config
        .unwrap()
        .agents;
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].metadata, r#"{"tier":"gold"}"#);

    // And back: no agent left in the rule.
    spec.routing = RoutingPolicy::new(RoutingPolicyParts {
        dispatch_mode: DispatchMode::Webhook,
        ..spec.routing.clone().into()
    })
    .unwrap();
    let back = lk
        .ensure_dispatch_rule(&spec, Some(rule.id.clone()))
        .await
        .unwrap();
    assert!(back.agent_names.is_empty());
    assert_eq!(emu.rules().len(), 1);
    assert_eq!(emu.count(Method::CreateSipDispatchRule), 1);
}

#[tokio::test]
async fn a_rule_someone_else_made_for_the_trunk_is_a_conflict() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    let tspec = trunk_spec("+14155550111");
    let trunk = lk.ensure_inbound_trunk(&tspec, None).await.unwrap();
    let ours = lk
        .ensure_dispatch_rule(
            &rule_spec(&trunk.id, tspec.connection_id, webhook_routing("a")),
            None,
        )
        .await
        .unwrap();

    // Another connection name for the same trunk: trunkline will not adopt the rule.
    let other = rule_spec(&trunk.id, ConnectionId::new(), webhook_routing("a"));
    let err = lk.ensure_dispatch_rule(&other, None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    assert_eq!(err.provider_code.as_deref(), Some("foreign_rule"));

    // LiveKit's own duplicate-rule check: a second rule moved onto the same trunk.
    let second_trunk_spec = trunk_spec("+14155550112");
    let trunk2 = lk
        .ensure_inbound_trunk(&second_trunk_spec, None)
        .await
        .unwrap();
    let second = lk
        .ensure_dispatch_rule(
            &rule_spec(
                &trunk2.id,
                second_trunk_spec.connection_id,
                webhook_routing("a"),
            ),
            None,
        )
        .await
        .unwrap();
    let mut moved = rule_spec(
        &trunk.id,
        second_trunk_spec.connection_id,
        webhook_routing("a"),
    );
    moved.name = second.name.clone();
    let err = lk
        .ensure_dispatch_rule(&moved, Some(second.id.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err:?}");
    assert_eq!(err.provider_code.as_deref(), Some("invalid_argument"));
    assert!(err.message.contains(ours.id.as_str()), "{}", err.message);
    assert_eq!(emu.rules().len(), 2);
}

#[tokio::test]
async fn rules_are_read_back_and_deleted() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    let tspec = trunk_spec("+14155550113");
    let trunk = lk.ensure_inbound_trunk(&tspec, None).await.unwrap();
    let rule = lk
        .ensure_dispatch_rule(
            &rule_spec(&trunk.id, tspec.connection_id, webhook_routing("a")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        lk.get_dispatch_rule(&rule.id).await.unwrap(),
        Some(rule.clone())
    );
    lk.delete_dispatch_rule(&rule.id).await.unwrap();
    assert!(emu.rules().is_empty());
    assert_eq!(lk.get_dispatch_rule(&rule.id).await.unwrap(), None);
    lk.delete_dispatch_rule(&rule.id).await.unwrap();
    let unknown = DispatchRuleId::parse("SDR_doesnotexist").unwrap();
    assert_eq!(lk.get_dispatch_rule(&unknown).await.unwrap(), None);
}

// --- agent dispatch ------------------------------------------------------------------------

#[tokio::test]
async fn agents_are_dispatched_and_listed_per_room() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    let room = RoomName::parse("call-_+14155550120_abc").unwrap();
    assert!(
        lk.list_agent_dispatches(&room).await.unwrap().is_empty(),
        "no room yet"
    );

    let id = lk
        .dispatch_agent(&room, "support-agent", Some("{\"k\":1}".to_owned()))
        .await
        .unwrap();
    let listed = lk.list_agent_dispatches(&room).await.unwrap();
    assert_eq!(listed, [(id.clone(), "support-agent".to_owned())]);
    let stored = emu.dispatches(room.as_str());
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, id.as_str());
    assert_eq!(stored[0].metadata, "{\"k\":1}");
    // The dispatch token names exactly this room.
    let other = RoomName::parse("another-room").unwrap();
    assert!(lk.list_agent_dispatches(&other).await.unwrap().is_empty());
}

// --- errors over HTTP ----------------------------------------------------------------------

#[tokio::test]
async fn errors_are_classified() {
    let emu = LiveKitEmulator::start();
    let spec = trunk_spec("+14155550130");

    let mut wrong_secret = config(&emu);
    wrong_secret.api_secret = SecretString::from("not-the-secret");
    let err = platform_from(wrong_secret)
        .ensure_inbound_trunk(&spec, None)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::AuthInvalid, "{err:?}");
    assert!(!err.message.contains("not-the-secret"));

    let mut wrong_key = config(&emu);
    wrong_key.api_key = "APIunknown".to_owned();
    let err = platform_from(wrong_key)
        .get_inbound_trunk(&SipTrunkId::parse("ST_x").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::AuthInvalid, "{err:?}");

    let lk = platform(&emu);
    emu.inject(
        Method::ListSipInboundTrunk,
        Fault::Fail {
            count: 1,
            status: 503,
        },
    );
    let err = lk.ensure_inbound_trunk(&spec, None).await.unwrap_err();
    assert_eq!(
        (err.code, err.provider_code.as_deref()),
        (ErrorCode::ProviderUnavailable, Some("unavailable"))
    );
    assert!(err.is_transient());

    emu.inject(
        Method::CreateDispatch,
        Fault::Fail {
            count: 1,
            status: 429,
        },
    );
    let room = RoomName::parse("r1").unwrap();
    let err = lk.dispatch_agent(&room, "a", None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::RateLimited);

    assert_eq!(emu.trunks().len(), 0, "failed calls changed nothing");
}

#[tokio::test]
async fn a_hanging_or_absent_server_is_unavailable() {
    let emu = LiveKitEmulator::start();
    let mut cfg = config(&emu);
    cfg.request_timeout = Duration::from_millis(300);
    let lk = platform_from(cfg);
    emu.inject(Method::GetSipInboundTrunk, Fault::Hang { count: 1 });
    let err = lk
        .get_inbound_trunk(&SipTrunkId::parse("ST_x").unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        (err.code, err.provider_code.as_deref()),
        (ErrorCode::ProviderUnavailable, Some("transport"))
    );
    assert!(err.message.contains("timed out"), "{}", err.message);

    let url = emu.url();
    drop(emu);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let gone = LiveKitConfig::new(url, "k", SecretString::from("s"));
    let err = platform_from(gone)
        .get_inbound_trunk(&SipTrunkId::parse("ST_x").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ProviderUnavailable);
}

#[tokio::test]
async fn requests_carry_the_grants_livekit_checks() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    lk.ensure_inbound_trunk(&trunk_spec("+14155550140"), None)
        .await
        .unwrap();
    lk.dispatch_agent(&RoomName::parse("room-a").unwrap(), "a", None)
        .await
        .unwrap();
    for r in emu.requests() {
        assert_eq!(r.status, Some(200), "{r:?}");
        assert_eq!(r.content_type.as_deref(), Some("application/protobuf"));
        assert_eq!(r.api_key.as_deref(), Some(emu.api_key()));
        assert!(
            r.user_agent
                .as_deref()
                .is_some_and(|u| u.starts_with("trunkline-livekit/"))
        );
    }
}

// --- a connection made by this very call -------------------------------------------------

fn trunk_ids(emu: &LiveKitEmulator, number: &str) -> Vec<String> {
    emu.trunks_for_number(number)
        .into_iter()
        .map(|t| t.sip_trunk_id)
        .collect()
}

#[tokio::test]
async fn a_new_connections_trunk_and_rule_are_created_without_listing_first() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    let spec = trunk_spec("+14155550150");
    let trunk = lk.create_inbound_trunk(&spec).await.unwrap();
    let rule = lk
        .create_dispatch_rule(&rule_spec(
            &trunk.id,
            spec.connection_id,
            webhook_routing("a"),
        ))
        .await
        .unwrap();
    assert_eq!(emu.count(Method::CreateSipInboundTrunk), 1);
    assert_eq!(emu.count(Method::CreateSipDispatchRule), 1);
    assert_eq!(emu.count(Method::ListSipInboundTrunk), 0);
    assert_eq!(emu.count(Method::ListSipDispatchRule), 0);
    assert_eq!(trunk_ids(&emu, "+14155550150"), vec![trunk.id.to_string()]);
    // The ensure path finds exactly these again, without writing.
    let before = writes(&emu);
    let again = lk.ensure_inbound_trunk(&spec, None).await.unwrap();
    assert_eq!(again.id, trunk.id);
    let rule_again = lk
        .ensure_dispatch_rule(
            &rule_spec(&trunk.id, spec.connection_id, webhook_routing("a")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(rule_again.id, rule.id);
    assert_eq!(writes(&emu), before);
}

#[tokio::test]
async fn a_new_connection_still_refuses_a_number_another_trunk_holds() {
    let emu = LiveKitEmulator::start();
    let foreign = emu.insert_trunk(proto::SipInboundTrunkInfo {
        name: "pbx trunk".to_owned(),
        numbers: vec!["+14155550151".to_owned()],
        ..Default::default()
    });
    let err = platform(&emu)
        .create_inbound_trunk(&trunk_spec("+14155550151"))
        .await
        .unwrap_err();
    // LiveKit's own refusal, then the listing that names the trunk in the way.
    assert_eq!(err.code, ErrorCode::NumberInUse, "{err:?}");
    assert!(err.message.contains(&foreign), "{}", err.message);
    assert_eq!(trunk_ids(&emu, "+14155550151"), vec![foreign]);
}

#[tokio::test]
async fn a_new_connections_lost_create_answer_is_found_not_repeated() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    let spec = trunk_spec("+14155550152");
    emu.inject(
        Method::CreateSipInboundTrunk,
        Fault::LoseAnswer {
            count: 1,
            status: 503,
        },
    );
    let trunk = lk.create_inbound_trunk(&spec).await.unwrap();
    assert_eq!(trunk_ids(&emu, "+14155550152"), vec![trunk.id.to_string()]);
    emu.inject(
        Method::CreateSipDispatchRule,
        Fault::LoseAnswer {
            count: 1,
            status: 503,
        },
    );
    let rule = lk
        .create_dispatch_rule(&rule_spec(
            &trunk.id,
            spec.connection_id,
            webhook_routing("a"),
        ))
        .await
        .unwrap();
    assert_eq!(emu.count(Method::CreateSipDispatchRule), 1);
    assert_eq!(
        lk.get_dispatch_rule(&rule.id).await.unwrap().map(|r| r.id),
        Some(rule.id)
    );
}

#[tokio::test]
async fn a_connections_own_digest_credentials_win_over_the_servers() {
    let emu = LiveKitEmulator::start();
    let mut cfg = config(&emu);
    cfg.inbound.auth_username = Some("carrier".to_owned());
    cfg.inbound.auth_password = Some(SecretString::from("server-wide-pass"));
    let lk = platform_from(cfg);
    let spec = InboundTrunkSpec {
        auth: Some(trunkline_core::ports::SipDigestAuth {
            username: "tl0123456789abcdef".to_owned(),
            password: SecretString::from("per-connection-password"),
        }),
        ..trunk_spec("+14155550177")
    };
    let created = lk.ensure_inbound_trunk(&spec, None).await.unwrap();
    let stored = emu.trunk(created.id.as_str()).unwrap();
    assert_eq!(
        (stored.auth_username.as_str(), stored.auth_password.as_str()),
        ("tl0123456789abcdef", "per-connection-password")
    );
    // The same credentials again: nothing to update.
    lk.ensure_inbound_trunk(&spec, Some(created.id.clone()))
        .await
        .unwrap();
    assert_eq!(emu.count(Method::UpdateSipInboundTrunk), 0);
    // New credentials (generated again): the trunk is updated in place.
    let renewed = InboundTrunkSpec {
        auth: Some(trunkline_core::ports::SipDigestAuth {
            username: "tlfedcba9876543210".to_owned(),
            password: SecretString::from("another-password"),
        }),
        ..spec
    };
    let updated = lk
        .ensure_inbound_trunk(&renewed, Some(created.id.clone()))
        .await
        .unwrap();
    assert_eq!(updated.id, created.id);
    assert_eq!(emu.count(Method::UpdateSipInboundTrunk), 1);
    let stored = emu.trunk(created.id.as_str()).unwrap();
    assert_eq!(stored.auth_password, "another-password");
}
