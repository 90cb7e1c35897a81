//! The upgrade from the last Twilio-only schema (issue 10): rows as that release wrote them,
//! and what a store must read back after migrating past it.
//!
//! A store crate's upgrade test applies its migrations up to [`LAST_TWILIO_ONLY_MIGRATION`]
//! only ([`MigrationsThrough`]), writes [`legacy_rows_sql`] in its own SQL dialect (it
//! supplies how each value is written, [`Literal`]), runs the remaining migrations through
//! the store, and calls [`assert_legacy_rows_readable`]. The rows are fixed values, so the test
//! needs a fresh database.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::backend::Backend;
use diesel::migration::{Migration, MigrationSource};
use trunkline_core::model::{
    Actor, AuditAction, AuditEvent, CallRecord, CallStatus, ConnectionStatus, DispatchMode,
    DispatchStatus, Integration, IntegrationStatus, LeaseKey, NumberConnection, NumberRouting,
    OriginationTarget, RoutingPolicy, RoutingPolicyParts, SealedSecret, StoredRouteTarget,
    TrunkStrategy,
};
use trunkline_core::ports::{Store, StoreError, WebhookEventRecord};
use trunkline_core::{
    AgentDispatchId, AuditEventId, CallId, CarrierAccountId, CarrierNumberId, ConnectionId,
    CredentialKeyId, CustomerId, DispatchRuleId, E164, IntegrationId, ProviderKind, RoomName,
    RouteId, RouteTargetId, SipTarget, SipTrunkId, WebhookEventId,
};
use uuid::Uuid;

use crate::fixtures::{bare_connection, e164, telnyx_integration, ts};

/// The version of the last migration of the release before carriers were pluggable
/// (`2025-11-21-000001_initial_schema`), as diesel spells versions: without the dashes.
pub const LAST_TWILIO_ONLY_MIGRATION: &str = "20251121000001";

/// The migrations of `source` up to and including version `last`: the schema a previous
/// release left behind.
#[derive(Debug, Clone, Copy)]
pub struct MigrationsThrough<S> {
    pub source: S,
    pub last: &'static str,
}

impl<DB: Backend, S: MigrationSource<DB>> MigrationSource<DB> for MigrationsThrough<S> {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<DB>>>> {
        // Versions are zero-padded dates: they order as strings, once spelled alike.
        let last = self.last.replace('-', "");
        Ok(self
            .source
            .migrations()?
            .into_iter()
            .filter(|m| m.name().version().to_string().replace('-', "") <= last)
            .collect())
    }
}

/// What the store's `migrate` applied on the previous release's schema: only, and at least
/// one of, the migrations that came after it.
pub fn assert_only_later_migrations_applied(applied: &[String]) {
    assert!(!applied.is_empty(), "the carrier-neutral migrations apply");
    assert!(
        applied
            .iter()
            .all(|v| v.as_str() > LAST_TWILIO_ONLY_MIGRATION),
        "{applied:?}"
    );
}

/// One value of a legacy row, for the store's dialect to write as an SQL literal.
#[derive(Debug, Clone, Copy)]
pub enum Literal<'a> {
    Null,
    Text(&'a str),
    Int(i64),
    Bool(bool),
    Uuid(Uuid),
    /// A time, as microseconds since the Unix epoch (UTC).
    Micros(i64),
    Bytes(&'a [u8]),
    /// A JSON document, as text.
    Json(&'a str),
}

/// A text literal in standard SQL (both SQLite and PostgreSQL read it so).
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Lower-case hexadecimal, for the dialects' byte-string literals.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

// The fixed values. Integration K authenticates with an API key, integration T with the
// auth token; each belongs to its own customer (one integration per customer and provider).
const CUSTOMER_K: &str = "cust_upgrade_key";
const CUSTOMER_T: &str = "cust_upgrade_token";
const INTEGRATION_K: &str = "0193a1f0-0000-7000-8000-00000000000a";
const INTEGRATION_T: &str = "0193a1f0-0000-7000-8000-00000000000b";
const ACCOUNT_K: &str = "AC0123456789abcdef0123456789abcdef";
const ACCOUNT_T: &str = "ACfedcba9876543210fedcba9876543210";
const API_KEY_SID: &str = "SK00112233445566778899aabbccddeeff";
const SEALED_K: &[u8] = &[0x01, 0x00, 0xff, 0x27, 0x5c, 0x80];
const SEALED_T: &[u8] = &[0x01, 0x7f];
const CONNECTION_1: &str = "0193a1f0-0000-7000-8000-0000000000c1";
const CONNECTION_2: &str = "0193a1f0-0000-7000-8000-0000000000c2";
const NUMBER_1: &str = "PN11111111111111111111111111111111";
const NUMBER_2: &str = "PN22222222222222222222222222222222";
const TRUNK_1: &str = "TKaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TARGET_1: &str = "OUbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const TARGET_2: &str = "OUcccccccccccccccccccccccccccccccc";
/// `origination_urls` as the previous release serialized `StoredOriginationUrl`.
const ORIGINATION_URLS: &str = r#"[{"sid":"OUbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","target":{"sipUrl":"sip:10.0.0.5:5060;transport=tcp","priority":10,"weight":20}},{"sid":"OUcccccccccccccccccccccccccccccccc","target":{"sipUrl":"sip:backup.example.net:5080;transport=tls","priority":20,"weight":5}}]"#;
const ROUTING: &str = r#"{"agentName":"support-agent","metadata":"{\"plan\":\"gold\"}","attributes":{"tenant":"o'brien"},"dispatchMode":"rule"}"#;
/// `previous_voice` as the previous release serialized Twilio's `VoiceConfig`.
const PREVIOUS_VOICE: &str = r#"{"voiceUrl":"https://user:pw@example.com/voice?x=1&y=2","voiceMethod":"POST","voiceFallbackUrl":null,"voiceFallbackMethod":null,"voiceApplicationSid":"AP0123456789abcdef0123456789abcdef","statusCallback":"https://example.com/status"}"#;
const CALL: &str = "0193a1f0-0000-7000-8000-0000000000d1";
const ROOM: &str = "call-upgrade-1";
const AUDIT: &str = "0193a1f0-0000-7000-8000-0000000000e1";
const AUDIT_DETAILS: &str = r#"{"phoneNumberSid":"PN11111111111111111111111111111111","trunkSid":"TKaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","created":["trunk","originationUrl"]}"#;
const EVENT: &str = "EV_upgrade_1";
const LEASE_TOKEN: &str = "0193a1f0-0000-7000-8000-0000000000f1";
const LEASE_HOLDER: &str = "instance-old";

fn uuid(raw: &str) -> Uuid {
    Uuid::parse_str(raw).expect("a fixed uuid")
}

fn micros(secs: i64) -> i64 {
    ts(secs).timestamp_micros()
}

/// Every legacy row as `INSERT` statements at the schema of [`LAST_TWILIO_ONLY_MIGRATION`],
/// each value written by `literal`. One statement per line, `;`-terminated.
///
/// `lease_expires_micros` is when the previous release's lease on number 1 runs out: in the
/// future, so the upgraded store must see it held.
pub fn legacy_rows_sql(
    lease_expires_micros: i64,
    literal: impl Fn(Literal<'_>) -> String,
) -> String {
    use Literal::{Bool, Bytes, Int, Json, Micros, Null, Text};
    let id = |raw: &str| Literal::Uuid(uuid(raw));
    let lease_key = format!("{}:{CUSTOMER_K}/twilio/number:{NUMBER_1}", CUSTOMER_K.len());
    let rows: [(&str, Vec<(&str, Literal<'_>)>); 8] = [
        (
            "integrations",
            vec![
                ("id", id(INTEGRATION_K)),
                ("customer_id", Text(CUSTOMER_K)),
                ("provider", Text("twilio")),
                ("account_sid", Text(ACCOUNT_K)),
                ("auth_kind", Text("api_key")),
                ("api_key_sid", Text(API_KEY_SID)),
                ("sealed_secret", Bytes(SEALED_K)),
                ("status", Text("active")),
                ("created_at", Micros(micros(0))),
                ("updated_at", Micros(micros(1))),
            ],
        ),
        (
            "integrations",
            vec![
                ("id", id(INTEGRATION_T)),
                ("customer_id", Text(CUSTOMER_T)),
                ("provider", Text("twilio")),
                ("account_sid", Text(ACCOUNT_T)),
                ("auth_kind", Text("auth_token")),
                ("api_key_sid", Null),
                ("sealed_secret", Bytes(SEALED_T)),
                ("status", Text("disabled")),
                ("created_at", Micros(micros(2))),
                ("updated_at", Micros(micros(3))),
            ],
        ),
        (
            "number_connections",
            vec![
                ("id", id(CONNECTION_1)),
                ("customer_id", Text(CUSTOMER_K)),
                ("provider", Text("twilio")),
                ("integration_id", id(INTEGRATION_K)),
                ("phone_number_sid", Text(NUMBER_1)),
                ("e164", Text("+14155550101")),
                ("status", Text("connected")),
                ("trunk_strategy", Text("dedicated")),
                ("trunk_sid", Text(TRUNK_1)),
                ("trunk_created", Bool(true)),
                ("origination_urls", Json(ORIGINATION_URLS)),
                ("sip_target", Text("sip:10.0.0.5:5060;transport=tcp")),
                ("routing", Json(ROUTING)),
                ("previous_voice", Json(PREVIOUS_VOICE)),
                ("livekit_trunk_id", Text("ST_upgrade1")),
                ("livekit_rule_id", Text("SDR_upgrade1")),
                ("last_error", Null),
                ("created_at", Micros(micros(10))),
                ("updated_at", Micros(micros(11))),
                ("connected_at", Micros(micros(12))),
                ("disconnected_at", Null),
            ],
        ),
        (
            "number_connections",
            vec![
                ("id", id(CONNECTION_2)),
                ("customer_id", Text(CUSTOMER_T)),
                ("provider", Text("twilio")),
                ("integration_id", id(INTEGRATION_T)),
                ("phone_number_sid", Text(NUMBER_2)),
                ("e164", Text("+14155550102")),
                ("status", Text("disconnected")),
                ("trunk_strategy", Text("shared")),
                ("trunk_sid", Null),
                ("trunk_created", Bool(false)),
                ("origination_urls", Json("[]")),
                ("sip_target", Text("sip:abc123.sip.livekit.cloud")),
                ("routing", Json("{}")),
                ("previous_voice", Null),
                ("livekit_trunk_id", Null),
                ("livekit_rule_id", Null),
                (
                    "last_error",
                    Text("PROVIDER_UNAVAILABLE: carrier timed out"),
                ),
                ("created_at", Micros(micros(20))),
                ("updated_at", Micros(micros(21))),
                ("connected_at", Null),
                ("disconnected_at", Micros(micros(22))),
            ],
        ),
        (
            "calls",
            vec![
                ("id", id(CALL)),
                ("room_name", Text(ROOM)),
                ("customer_id", Text(CUSTOMER_K)),
                ("connection_id", id(CONNECTION_1)),
                ("sip_call_id", Text("SCL_upgrade1")),
                ("called", Text("+14155550101")),
                ("caller", Text("+14155550199")),
                ("status", Text("ended")),
                ("dispatch_status", Text("dispatched")),
                ("dispatch_id", Text("AD_upgrade1")),
                ("dispatch_attempts", Int(2)),
                ("agent_name", Text("support-agent")),
                ("claimant", Null),
                ("claim_expires_at", Null),
                ("started_at", Micros(micros(30))),
                ("answered_at", Micros(micros(31))),
                ("ended_at", Micros(micros(90))),
                ("updated_at", Micros(micros(90))),
            ],
        ),
        (
            "audit_events",
            vec![
                ("id", id(AUDIT)),
                ("customer_id", Text(CUSTOMER_K)),
                ("provider", Text("twilio")),
                ("action", Text("number.connected")),
                ("actor_subject", Text("user-123")),
                ("actor_role", Text("admin")),
                ("details", Json(AUDIT_DETAILS)),
                ("request_id", Text("req-upgrade")),
                ("at", Micros(micros(13))),
            ],
        ),
        (
            "webhook_events",
            vec![
                ("id", Text(EVENT)),
                ("kind", Text("participant_joined")),
                ("room_name", Text(ROOM)),
                ("received_at", Micros(micros(32))),
            ],
        ),
        (
            "leases",
            vec![
                ("key", Text(&lease_key)),
                ("holder", Text(LEASE_HOLDER)),
                ("token", id(LEASE_TOKEN)),
                ("expires_at", Micros(lease_expires_micros)),
            ],
        ),
    ];
    rows.into_iter()
        .fold(String::new(), |mut sql, (table, values)| {
            let columns: Vec<&str> = values.iter().map(|(c, _)| *c).collect();
            let values: Vec<String> = values.into_iter().map(|(_, v)| literal(v)).collect();
            let _ = writeln!(
                sql,
                "INSERT INTO {table} ({}) VALUES ({});",
                columns.join(", "),
                values.join(", ")
            );
            sql
        })
}

fn expected_integrations() -> (Integration, Integration) {
    let with_key = Integration {
        id: IntegrationId::from_uuid(uuid(INTEGRATION_K)),
        customer_id: customer(CUSTOMER_K),
        provider: ProviderKind::Twilio,
        account_id: Some(CarrierAccountId::parse(ACCOUNT_K).expect("valid")),
        key_id: Some(CredentialKeyId::parse(API_KEY_SID).expect("valid")),
        sealed_secret: SealedSecret(SEALED_K.to_vec()),
        status: IntegrationStatus::Active,
        created_at: ts(0),
        updated_at: ts(1),
    };
    let with_token = Integration {
        id: IntegrationId::from_uuid(uuid(INTEGRATION_T)),
        customer_id: customer(CUSTOMER_T),
        provider: ProviderKind::Twilio,
        account_id: Some(CarrierAccountId::parse(ACCOUNT_T).expect("valid")),
        key_id: None,
        sealed_secret: SealedSecret(SEALED_T.to_vec()),
        status: IntegrationStatus::Disabled,
        created_at: ts(2),
        updated_at: ts(3),
    };
    (with_key, with_token)
}

fn expected_connections() -> (NumberConnection, NumberConnection) {
    let sip = |raw: &str| SipTarget::parse(raw).expect("valid");
    let target = |id: &str, url: &str, priority, weight| StoredRouteTarget {
        id: RouteTargetId::parse(id).expect("valid"),
        target: OriginationTarget::new(sip(url), priority, weight).expect("valid"),
    };
    let connected = NumberConnection {
        id: ConnectionId::from_uuid(uuid(CONNECTION_1)),
        customer_id: customer(CUSTOMER_K),
        provider: ProviderKind::Twilio,
        integration_id: IntegrationId::from_uuid(uuid(INTEGRATION_K)),
        number_id: CarrierNumberId::parse(NUMBER_1).expect("valid"),
        e164: E164::parse("+14155550101").expect("valid"),
        status: ConnectionStatus::Connected,
        trunk_strategy: TrunkStrategy::Dedicated,
        route_id: Some(RouteId::parse(TRUNK_1).expect("valid")),
        route_created: true,
        route_targets: vec![
            target(TARGET_1, "sip:10.0.0.5:5060;transport=tcp", 10, 20),
            target(TARGET_2, "sip:backup.example.net:5080;transport=tls", 20, 5),
        ],
        sip_target: sip("sip:10.0.0.5:5060;transport=tcp"),
        routing: RoutingPolicy::new(RoutingPolicyParts {
            agent_name: Some("support-agent".to_owned()),
            metadata: Some(r#"{"plan":"gold"}"#.to_owned()),
            attributes: [("tenant".to_owned(), "o'brien".to_owned())].into(),
            dispatch_mode: DispatchMode::Rule,
        })
        .expect("valid"),
        previous_routing: Some(NumberRouting(
            serde_json::from_str(PREVIOUS_VOICE).expect("valid JSON"),
        )),
        livekit_trunk_id: Some(SipTrunkId::parse("ST_upgrade1").expect("valid")),
        livekit_rule_id: Some(DispatchRuleId::parse("SDR_upgrade1").expect("valid")),
        last_error: None,
        created_at: ts(10),
        updated_at: ts(11),
        connected_at: Some(ts(12)),
        disconnected_at: None,
    };
    let disconnected = NumberConnection {
        id: ConnectionId::from_uuid(uuid(CONNECTION_2)),
        customer_id: customer(CUSTOMER_T),
        provider: ProviderKind::Twilio,
        integration_id: IntegrationId::from_uuid(uuid(INTEGRATION_T)),
        number_id: CarrierNumberId::parse(NUMBER_2).expect("valid"),
        e164: E164::parse("+14155550102").expect("valid"),
        status: ConnectionStatus::Disconnected,
        trunk_strategy: TrunkStrategy::Shared,
        route_id: None,
        route_created: false,
        route_targets: Vec::new(),
        sip_target: sip("sip:abc123.sip.livekit.cloud"),
        routing: RoutingPolicy::default(),
        previous_routing: None,
        livekit_trunk_id: None,
        livekit_rule_id: None,
        last_error: Some("PROVIDER_UNAVAILABLE: carrier timed out".to_owned()),
        created_at: ts(20),
        updated_at: ts(21),
        connected_at: None,
        disconnected_at: Some(ts(22)),
    };
    (connected, disconnected)
}

fn customer(raw: &str) -> CustomerId {
    CustomerId::parse(raw).expect("valid")
}

fn room() -> RoomName {
    RoomName::parse(ROOM).expect("valid")
}

/// Read every legacy row back through the store API, value by value, then check that the
/// migrated tables still take writes and keep their uniqueness: a connection and an
/// integration saved again, a duplicate number refused, a Telnyx integration (no account id)
/// accepted, the previous release's live lease still held.
#[allow(clippy::too_many_lines)] // one row after the other, each asserted in full
pub async fn assert_legacy_rows_readable(store: &dyn Store) {
    let twilio = ProviderKind::Twilio;
    let (with_key, with_token) = expected_integrations();
    assert_eq!(
        store
            .get_integration(&with_key.customer_id, twilio)
            .await
            .unwrap(),
        Some(with_key.clone()),
        "the API-key integration keeps its account and key ids"
    );
    assert_eq!(
        store
            .get_integration(&with_token.customer_id, twilio)
            .await
            .unwrap(),
        Some(with_token.clone()),
        "the auth-token integration has no key id"
    );

    let (connected, disconnected) = expected_connections();
    assert_eq!(
        store
            .get_connection(&connected.customer_id, twilio, &connected.number_id)
            .await
            .unwrap(),
        Some(connected.clone())
    );
    assert_eq!(
        store.get_connection_by_id(disconnected.id).await.unwrap(),
        Some(disconnected.clone())
    );
    assert_eq!(
        store
            .list_connections(&disconnected.customer_id, twilio)
            .await
            .unwrap(),
        vec![disconnected.clone()]
    );
    assert_eq!(
        store
            .find_live_connection_by_e164(&connected.e164)
            .await
            .unwrap(),
        Some(connected.clone())
    );
    // Verbatim: the Twilio adapter reads the voice configuration it recorded back then.
    let previous = connected.previous_routing.as_ref().expect("recorded");
    assert_eq!(
        previous.0["voiceApplicationSid"],
        "AP0123456789abcdef0123456789abcdef"
    );
    assert_eq!(previous.0["voiceFallbackUrl"], serde_json::Value::Null);

    let call = CallRecord {
        id: CallId::from_uuid(uuid(CALL)),
        room_name: room(),
        customer_id: Some(customer(CUSTOMER_K)),
        connection_id: Some(connected.id),
        sip_call_id: Some("SCL_upgrade1".to_owned()),
        called: Some(E164::parse("+14155550101").expect("valid")),
        caller: Some(E164::parse("+14155550199").expect("valid")),
        status: CallStatus::Ended,
        dispatch_status: DispatchStatus::Dispatched,
        dispatch_id: Some(AgentDispatchId::parse("AD_upgrade1").expect("valid")),
        dispatch_attempts: 2,
        agent_name: Some("support-agent".to_owned()),
        started_at: ts(30),
        answered_at: Some(ts(31)),
        ended_at: Some(ts(90)),
        updated_at: ts(90),
    };
    assert_eq!(store.get_call(call.id).await.unwrap(), Some(call.clone()));
    assert_eq!(
        store.recent_calls(connected.id, 10).await.unwrap(),
        vec![call]
    );

    let audit = AuditEvent {
        id: AuditEventId::from_uuid(uuid(AUDIT)),
        customer_id: customer(CUSTOMER_K),
        provider: twilio,
        action: AuditAction::NumberConnected,
        actor: Actor {
            subject: "user-123".to_owned(),
            role: "admin".to_owned(),
        },
        details: serde_json::from_str(AUDIT_DETAILS).expect("valid JSON"),
        request_id: Some("req-upgrade".to_owned()),
        at: ts(13),
    };
    assert_eq!(
        store.list_audit(&audit.customer_id, 10).await.unwrap(),
        vec![audit]
    );

    assert_eq!(
        store.last_webhook_event(&room()).await.unwrap(),
        Some(WebhookEventRecord {
            id: WebhookEventId::parse(EVENT).expect("valid"),
            kind: "participant_joined".to_owned(),
            room_name: Some(room()),
            received_at: ts(32),
        })
    );

    // A connect running on the previous release during the upgrade still holds its number.
    let number_lease = LeaseKey::number(
        connected.customer_id.clone(),
        twilio,
        connected.number_id.clone(),
    );
    assert_eq!(
        store
            .try_acquire_lease(&number_lease, "instance-new", Duration::from_secs(60))
            .await
            .unwrap(),
        None,
        "the lease key format is unchanged"
    );

    assert_migrated_tables_take_writes(store, &with_key, &connected).await;
}

async fn assert_migrated_tables_take_writes(
    store: &dyn Store,
    with_key: &Integration,
    connected: &NumberConnection,
) {
    let twilio = ProviderKind::Twilio;
    let mut rewritten = connected.clone();
    rewritten.updated_at = ts(40);
    rewritten.previous_routing = Some(NumberRouting::none());
    store.save_connection(&rewritten).await.unwrap();
    assert_eq!(
        store.get_connection_by_id(connected.id).await.unwrap(),
        Some(rewritten)
    );

    let mut duplicate = bare_connection(&connected.customer_id, e164(3));
    duplicate.number_id = connected.number_id.clone();
    let err = store.save_connection(&duplicate).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(_)),
        "(customer, provider, number) stays unique: {err:?}"
    );

    let mut replaced = with_key.clone();
    replaced.key_id = None;
    replaced.updated_at = ts(41);
    store.put_integration(&replaced).await.unwrap();
    assert_eq!(
        store
            .get_integration(&with_key.customer_id, twilio)
            .await
            .unwrap(),
        Some(replaced)
    );

    let telnyx = telnyx_integration(&with_key.customer_id);
    store.put_integration(&telnyx).await.unwrap();
    assert_eq!(
        store
            .get_integration(&with_key.customer_id, ProviderKind::Telnyx)
            .await
            .unwrap(),
        Some(telnyx)
    );
}

/// When the previous release's lease in [`legacy_rows_sql`] should run out: an hour from now.
pub fn live_lease_expiry_micros() -> i64 {
    (Utc::now() + chrono::Duration::hours(1)).timestamp_micros()
}

/// Microseconds to a time, for dialects that need one.
pub fn time_of(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).expect("in range")
}
