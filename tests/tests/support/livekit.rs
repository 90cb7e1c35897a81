//! The LiveKit half of the end-to-end fixtures: the LiveKit emulator, webhook delivery as
//! LiveKit does it (copies, shuffled, concurrently, to several instances), the call
//! diagnostics routes, polling, and direct counts in PostgreSQL for "nothing stored".

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::future::Future;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom as _;
use reqwest::Method;
use serde_json::Value;
use trunkline_e2e::TestServer;
use trunkline_testkit::livekit::{EmulatorOptions, LiveKitEmulator, WebhookDelivery};

use super::{Backend, Client, Reply};

pub const WEBHOOK: &str = "/telephony/livekit-webhook";
/// The agent the tests' routing policies name.
pub const AGENT: &str = "support-agent";
/// How long a test waits for background work (dispatch retries) before failing.
pub const SETTLE: Duration = Duration::from_secs(20);

/// A LiveKit emulator with room for concurrent webhook senders and trunkline's requests.
pub fn livekit_emulator() -> LiveKitEmulator {
    LiveKitEmulator::start_with(EmulatorOptions {
        workers: 4,
        hang_for: Duration::from_secs(3),
        ..EmulatorOptions::default()
    })
    .expect("the LiveKit emulator starts")
}

pub fn webhook_url(server: &TestServer) -> String {
    server.url(WEBHOOK)
}

/// A path segment with everything but unreserved characters percent-encoded (room names
/// hold `+` and may hold `/`).
pub fn encode_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 3);
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

pub async fn call_by_room(client: &Client<'_>, room: &str) -> Reply {
    client
        .call(
            Method::GET,
            &format!("/telephony/calls/by-room/{}", encode_segment(room)),
            &Value::Null,
        )
        .await
}

pub async fn call_by_id(client: &Client<'_>, id: &str) -> Reply {
    client
        .call(Method::GET, &format!("/telephony/calls/{id}"), &Value::Null)
        .await
}

/// trunkline's outbound trunks in the emulator.
pub fn outbound_trunks(
    lk: &LiveKitEmulator,
) -> Vec<trunkline_testkit::livekit::proto::SipOutboundTrunkInfo> {
    lk.outbound_trunks()
        .into_iter()
        .filter(|t| t.name.starts_with("trunkline-outbound-"))
        .collect()
}

/// Poll `probe` until it yields a value, or fail after `within` saying what was awaited.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The room's call once `done` holds for it.
pub async fn wait_for_call(
    client: &Client<'_>,
    room: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(what, SETTLE, || async {
        let r = call_by_room(client, room).await;
        (r.status.as_u16() == 200 && done(&r.body)).then_some(r.body)
    })
    .await
}

/// Deliver every event `copies` times, the copies of an event going round `targets`, all
/// at once; shuffled first when asked. What LiveKit's at-least-once delivery can do at
/// worst, short of delays.
pub async fn deliver(
    lk: &LiveKitEmulator,
    targets: &[String],
    events: &[Value],
    copies: usize,
    shuffle: bool,
) -> Vec<WebhookDelivery> {
    let mut plan: Vec<(String, &Value)> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        for k in 0..copies {
            plan.push((targets[(i + k) % targets.len()].clone(), event));
        }
    }
    if shuffle {
        plan.shuffle(&mut rand::rng());
    }
    futures::future::join_all(
        plan.iter()
            .map(|(target, event)| lk.send_webhook(target, event)),
    )
    .await
}

/// The events with the leave and `room_finished` moved `secs` later than the join: a call
/// that lasted that long.
pub fn with_talk_time(events: &[Value], secs: i64) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if matches!(
                e["event"].as_str(),
                Some("participant_left" | "room_finished")
            ) {
                let at = match &e["createdAt"] {
                    Value::String(s) => s.parse::<i64>().expect("createdAt"),
                    v => v.as_i64().expect("createdAt"),
                };
                // protojson writes int64 as a string; keep the form it had.
                e["createdAt"] = match &e["createdAt"] {
                    Value::String(_) => Value::String((at + secs).to_string()),
                    _ => Value::from(at + secs),
                };
            }
            e
        })
        .collect()
}

/// The event named `name` of a played call.
#[track_caller]
pub fn event<'a>(events: &'a [Value], name: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event"))
}

/// Every delivery answered 200.
#[track_caller]
pub fn all_accepted(deliveries: &[WebhookDelivery]) {
    let bad: Vec<&WebhookDelivery> = deliveries.iter().filter(|d| !d.succeeded()).collect();
    assert!(bad.is_empty(), "deliveries not answered 200: {bad:?}");
}

/// The kinds of a status answer's drifts.
pub fn drift_kinds(status: &Value) -> BTreeSet<String> {
    status["drifts"]
        .as_array()
        .expect("drifts")
        .iter()
        .map(|d| d["kind"].as_str().expect("a kind").to_owned())
        .collect()
}

/// `SELECT count(*)` in the test's PostgreSQL database; `None` on SQLite.
pub async fn pg_count(backend: &Backend, table: &str) -> Option<i64> {
    let Backend::Postgres(db) = backend else {
        return None;
    };
    let (client, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let row = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count");
    Some(row.get::<_, i64>(0))
}

/// Wait until the server logged `needle` (its output is read by another thread, a moment
/// after the request that caused it was answered).
pub async fn wait_for_log(server: &TestServer, needle: &str) {
    wait_for(
        &format!("the log line {needle:?}"),
        Duration::from_secs(5),
        || async { server.stderr().contains(needle).then_some(()) },
    )
    .await;
}

/// Log lines at WARN or ERROR level.
pub fn warnings(server: &TestServer) -> Vec<String> {
    server
        .stderr()
        .lines()
        .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
        .map(ToOwned::to_owned)
        .collect()
}
