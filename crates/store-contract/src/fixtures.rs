//! Builders for the domain values the cases store. Ids are random (so rows of one case never
//! collide by accident); times are microsecond-exact, the precision every store keeps.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use trunkline_core::model::{
    Actor, AuditAction, AuditEvent, CallRecord, CallStatus, ConnectionStatus, DispatchMode,
    DispatchStatus, Integration, IntegrationStatus, LeaseKey, NumberConnection, NumberRouting,
    OriginationTarget, RoutingPolicy, RoutingPolicyParts, SealedSecret, StoredRouteTarget,
    TrunkStrategy,
};
use trunkline_core::ports::WebhookEventRecord;
use trunkline_core::{
    AgentDispatchId, AuditEventId, CallId, CarrierAccountId, CarrierNumberId, ConnectionId,
    CredentialKeyId, CustomerId, DispatchRuleId, E164, IntegrationId, ProviderKind, RoomName,
    RouteId, RouteTargetId, SipTarget, SipTrunkId, WebhookEventId,
};
use uuid::Uuid;

fn hex32() -> String {
    Uuid::new_v4().simple().to_string()
}

/// A fixed instant with a non-zero microsecond part, shifted by `secs` seconds.
pub fn ts(secs: i64) -> DateTime<Utc> {
    const BASE_MICROS: i64 = 1_773_500_966_535_897; // 2026-03-14T15:09:26.535897Z
    DateTime::from_timestamp_micros(BASE_MICROS + secs * 1_000_000).expect("in range")
}

/// Now, truncated to the microsecond.
pub fn now_micros() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("in range")
}

pub fn customer(tag: &str) -> CustomerId {
    CustomerId::parse(&format!("cust_{tag}_{}", &hex32()[..8])).expect("valid customer id")
}

// Carrier ids are opaque to the stores; these look like Twilio's (the ids of the Telnyx
// case are numeric strings) so that the stored values are realistic.

pub fn account_id() -> CarrierAccountId {
    CarrierAccountId::parse(&format!("AC{}", hex32())).expect("valid")
}

pub fn key_id() -> CredentialKeyId {
    CredentialKeyId::parse(&format!("SK{}", hex32())).expect("valid")
}

pub fn number_id() -> CarrierNumberId {
    CarrierNumberId::parse(&format!("PN{}", hex32())).expect("valid")
}

pub fn route_id() -> RouteId {
    RouteId::parse(&format!("TK{}", hex32())).expect("valid")
}

pub fn route_target_id() -> RouteTargetId {
    RouteTargetId::parse(&format!("OU{}", hex32())).expect("valid")
}

/// A random numeric string of `digits` digits, the shape of Telnyx's ids.
pub fn numeric_id(digits: usize) -> String {
    let mut out = String::with_capacity(digits);
    while out.len() < digits {
        out.push_str(&Uuid::new_v4().as_u128().to_string());
    }
    // Never a leading zero, like the ids Telnyx hands out.
    out.replace_range(..1, "1");
    out.truncate(digits);
    out
}

/// `+1 415 555 01nn`, a valid US number.
pub fn e164(n: u8) -> E164 {
    E164::parse(&format!("+141555501{:02}", n % 100)).expect("valid E.164")
}

pub fn room(tag: &str) -> RoomName {
    RoomName::parse(&format!("call-{tag}-{}", &hex32()[..12])).expect("valid room")
}

pub fn dispatch_id() -> AgentDispatchId {
    AgentDispatchId::parse(&format!("AD_{}", &hex32()[..12])).expect("valid")
}

pub fn event_id() -> WebhookEventId {
    WebhookEventId::parse(&format!("EV_{}", hex32())).expect("valid")
}

/// The lease on one (random) number of the customer.
pub fn lease_key(customer: &CustomerId) -> LeaseKey {
    LeaseKey::number(customer.clone(), ProviderKind::Twilio, number_id())
}

/// An API-key integration with a few sealed bytes.
pub fn integration(customer: &CustomerId) -> Integration {
    Integration {
        id: IntegrationId::new(),
        customer_id: customer.clone(),
        provider: ProviderKind::Twilio,
        account_id: Some(account_id()),
        key_id: Some(key_id()),
        sealed_secret: SealedSecret(vec![0x01, 0x00, 0xff, 0x7f, 0x80, 0x42, 0x00, 0x13]),
        status: IntegrationStatus::Active,
        created_at: ts(0),
        updated_at: ts(1),
    }
}

/// A connection with every optional field empty.
pub fn bare_connection(customer: &CustomerId, e164: E164) -> NumberConnection {
    NumberConnection {
        id: ConnectionId::new(),
        customer_id: customer.clone(),
        provider: ProviderKind::Twilio,
        integration_id: IntegrationId::new(),
        number_id: number_id(),
        e164,
        status: ConnectionStatus::Pending,
        trunk_strategy: TrunkStrategy::Shared,
        route_id: None,
        route_created: false,
        route_targets: Vec::new(),
        sip_target: SipTarget::parse("sip:abc123.sip.livekit.cloud").expect("valid"),
        routing: RoutingPolicy::default(),
        previous_routing: None,
        livekit_trunk_id: None,
        livekit_rule_id: None,
        last_error: None,
        created_at: ts(10),
        updated_at: ts(10),
        connected_at: None,
        disconnected_at: None,
    }
}

/// A connection with every field filled, including non-default routing and two
/// origination targets.
pub fn full_connection(customer: &CustomerId, e164: E164) -> NumberConnection {
    let primary = SipTarget::parse("sip:10.0.0.5:5060;transport=tcp").expect("valid");
    let backup = SipTarget::parse("sip:backup.example.net:5080;transport=tls").expect("valid");
    let mut attributes = BTreeMap::new();
    attributes.insert("tenant".to_owned(), "acme".to_owned());
    attributes.insert(
        "lang".to_owned(),
        "fr-CA \u{e9}\u{e8} \"quoted\"".to_owned(),
    );
    NumberConnection {
        id: ConnectionId::new(),
        customer_id: customer.clone(),
        provider: ProviderKind::Twilio,
        integration_id: IntegrationId::new(),
        number_id: number_id(),
        e164,
        status: ConnectionStatus::Connected,
        trunk_strategy: TrunkStrategy::Dedicated,
        route_id: Some(route_id()),
        route_created: true,
        route_targets: vec![
            StoredRouteTarget {
                id: route_target_id(),
                target: OriginationTarget::new(primary.clone(), 10, 20).expect("valid"),
            },
            StoredRouteTarget {
                id: route_target_id(),
                target: OriginationTarget::new(backup, 20, 5).expect("valid"),
            },
        ],
        sip_target: primary,
        routing: RoutingPolicy::new(RoutingPolicyParts {
            agent_name: Some("support-agent".to_owned()),
            metadata: Some(r#"{"plan":"gold","n":1}"#.to_owned()),
            attributes,
            dispatch_mode: DispatchMode::Rule,
        })
        .expect("valid"),
        // What the Twilio adapter records: the number's voice configuration.
        previous_routing: Some(NumberRouting(serde_json::json!({
            "voiceUrl": "https://example.com/voice?x=1&y=2",
            "voiceMethod": "POST",
            "voiceFallbackUrl": "https://example.com/fallback",
            "voiceFallbackMethod": "GET",
            "voiceApplicationSid": format!("AP{}", hex32()),
            "statusCallback": null,
            "nested": {"list": [1, 2.5, "three", true], "empty": {}},
        }))),
        livekit_trunk_id: Some(SipTrunkId::parse("ST_abcDEF123").expect("valid")),
        livekit_rule_id: Some(DispatchRuleId::parse("SDR_xyz789").expect("valid")),
        last_error: Some("PROVIDER_UNAVAILABLE: carrier timed out".to_owned()),
        created_at: ts(20),
        updated_at: ts(21),
        connected_at: Some(ts(22)),
        disconnected_at: Some(ts(23)),
    }
}

/// A Telnyx integration: a bearer API key only, so neither an account id nor a key id.
pub fn telnyx_integration(customer: &CustomerId) -> Integration {
    Integration {
        id: IntegrationId::new(),
        customer_id: customer.clone(),
        provider: ProviderKind::Telnyx,
        account_id: None,
        key_id: None,
        sealed_secret: SealedSecret(vec![0x02, 0xfe, 0x00, 0x10]),
        status: IntegrationStatus::Active,
        created_at: ts(5),
        updated_at: ts(6),
    }
}

/// A Telnyx connection: numeric ids for the number, the FQDN connection (the route) and
/// its FQDNs (the targets), and the previous connection id as the routing to restore.
pub fn telnyx_connection(
    customer: &CustomerId,
    integration: &Integration,
    e164: E164,
) -> NumberConnection {
    let primary = SipTarget::parse("sip:abc123.sip.livekit.cloud;transport=tcp").expect("valid");
    let opaque = |raw: String| RouteTargetId::parse(&raw).expect("valid");
    NumberConnection {
        provider: ProviderKind::Telnyx,
        integration_id: integration.id,
        number_id: CarrierNumberId::parse(&numeric_id(19)).expect("valid"),
        status: ConnectionStatus::Connected,
        route_id: Some(RouteId::parse(&numeric_id(19)).expect("valid")),
        route_created: true,
        route_targets: vec![
            StoredRouteTarget {
                id: opaque(numeric_id(19)),
                target: OriginationTarget::with_defaults(primary.clone()),
            },
            StoredRouteTarget {
                id: opaque(numeric_id(18)),
                target: OriginationTarget::new(
                    SipTarget::parse("sip:backup.example.net:5061;transport=tls").expect("valid"),
                    20,
                    1,
                )
                .expect("valid"),
            },
        ],
        sip_target: primary,
        previous_routing: Some(NumberRouting(
            serde_json::json!({ "connectionId": numeric_id(19) }),
        )),
        connected_at: Some(ts(12)),
        ..bare_connection(customer, e164)
    }
}

/// A ringing call with nothing known but its room and start.
pub fn bare_call(room: &RoomName, started: DateTime<Utc>) -> CallRecord {
    CallRecord {
        id: CallId::new(),
        room_name: room.clone(),
        customer_id: None,
        connection_id: None,
        sip_call_id: None,
        called: None,
        caller: None,
        status: CallStatus::Ringing,
        dispatch_status: DispatchStatus::None,
        dispatch_id: None,
        dispatch_attempts: 0,
        agent_name: None,
        started_at: started,
        answered_at: None,
        ended_at: None,
        updated_at: started,
    }
}

/// A routed call with every field filled.
pub fn full_call(
    room: &RoomName,
    customer: &CustomerId,
    connection: ConnectionId,
    started: DateTime<Utc>,
) -> CallRecord {
    CallRecord {
        id: CallId::new(),
        room_name: room.clone(),
        customer_id: Some(customer.clone()),
        connection_id: Some(connection),
        sip_call_id: Some(format!("SCL_{}", &hex32()[..10])),
        called: Some(e164(1)),
        caller: Some(e164(2)),
        status: CallStatus::Active,
        dispatch_status: DispatchStatus::None,
        dispatch_id: None,
        dispatch_attempts: 0,
        agent_name: Some("support-agent".to_owned()),
        started_at: started,
        answered_at: Some(started + chrono::Duration::microseconds(1_500_001)),
        ended_at: None,
        updated_at: started + chrono::Duration::microseconds(1_500_002),
    }
}

pub fn webhook_event(room: Option<&RoomName>, received: DateTime<Utc>) -> WebhookEventRecord {
    WebhookEventRecord {
        id: event_id(),
        kind: "participant_joined".to_owned(),
        room_name: room.cloned(),
        received_at: received,
    }
}

pub fn audit_event(customer: &CustomerId, at: DateTime<Utc>) -> AuditEvent {
    AuditEvent {
        id: AuditEventId::new(),
        customer_id: customer.clone(),
        provider: ProviderKind::Twilio,
        action: AuditAction::NumberConnected,
        actor: Actor {
            subject: "user-123".to_owned(),
            role: "admin".to_owned(),
        },
        details: serde_json::json!({
            "phoneNumberSid": format!("PN{}", hex32()),
            "trunkSid": format!("TK{}", hex32()),
            "created": ["trunk", "originationUrl"],
            "attempt": 2,
            "dryRun": false,
            "note": null,
        }),
        request_id: Some(format!("req-{}", &hex32()[..8])),
        at,
    }
}
