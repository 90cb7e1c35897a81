//! Crash anywhere: `trunkline` killed with SIGKILL in the middle of connect, reconnect and
//! disconnect, on PostgreSQL, with Twilio and with Telnyx (and LiveKit), then restarted and
//! the operation retried.
//!
//! The kill points are not left to luck. A first run of each flow records the upstream calls
//! it makes, per emulator; then, for every call, the emulator holds that very request
//! ([`trunkline_testkit::crashpoint`]) once before serving it and once after serving it
//! (the change made, the answer never received), the test kills the process at that moment,
//! starts a new one on the same database, retries until the operation succeeds, and checks the
//! end state: one route, one origination target per SIP target, one attachment, one LiveKit
//! trunk and rule per connected number, no orphan at the carrier or at LiveKit, the stored
//! record matching both sides, no lease living past its time.
//!
//! `twilio_connect`, … `telnyx_disconnect` (in the normal suite) take every point of their
//! flow once. `soak` (ignored; run by
//! `scripts/soak`) takes random points, flows and carriers for `CRASH_SOAK_ROUNDS` rounds and
//! prints counts.

// The scenarios here need PostgreSQL only: `on_both_backends!` goes unused.
#[allow(unused_macros)]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng as _};
use reqwest::Method;
use serde_json::{Value, json};
use trunkline_e2e::TestServer;
use trunkline_testkit::crashpoint::{CrashPoint, Moment};
use trunkline_testkit::livekit::LiveKitEmulator;
use trunkline_testkit::telnyx::{EmulatorOptions as TelnyxOptions, TelnyxEmulator};
use trunkline_testkit::twilio::TwilioEmulator;
use trunkline_twilio::{AccountSid, PhoneNumberSid};

use support::livekit::livekit_emulator;
use support::{Backend, Client, HANG_FOR, Reply, SIP_TARGET, Settings, Transcript, token};

/// Short, so a lease the killed process held frees its number within a second or two.
const LEASE_TTL_MS: u64 = 1_000;
/// The SIP target a reconnect moves to.
const OTHER_TARGET: &str = "sip:ingress-b.livekit.e2e.test";
/// The longest a retried operation may take to go through after a restart.
const RETRY_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Carrier {
    Twilio,
    Telnyx,
}

impl Carrier {
    fn path(self) -> &'static str {
        match self {
            Self::Twilio => "/telephony/providers/twilio",
            Self::Telnyx => "/telephony/providers/telnyx",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Flow {
    /// A first connect (shared trunk).
    Connect,
    /// Connect again with another SIP target and agent: targets and rule change.
    Reconnect,
    /// Disconnect a number on a dedicated trunk, restoring what it pointed at.
    Disconnect,
}

const FLOWS: [Flow; 3] = [Flow::Connect, Flow::Reconnect, Flow::Disconnect];

impl Flow {
    /// The connect that must have happened before the flow starts, if any.
    fn setup(self) -> Option<Value> {
        match self {
            Self::Connect => None,
            Self::Reconnect => Some(json!({"routing": {"agentName": "support-agent"}})),
            Self::Disconnect => Some(
                json!({"trunkStrategy": "dedicated", "routing": {"agentName": "support-agent"}}),
            ),
        }
    }

    fn request(self) -> (&'static str, Value) {
        match self {
            Self::Connect => (
                "connect",
                json!({"routing": {"agentName": "support-agent"}}),
            ),
            Self::Reconnect => (
                "connect",
                json!({"sipTarget": OTHER_TARGET, "routing": {"agentName": "agent-b"}}),
            ),
            Self::Disconnect => ("disconnect", json!({"restoreVoiceConfig": true})),
        }
    }

    /// The SIP targets the number ends with; none once disconnected.
    fn targets(self) -> Vec<&'static str> {
        match self {
            Self::Connect => vec![SIP_TARGET],
            Self::Reconnect => vec![OTHER_TARGET],
            Self::Disconnect => vec![],
        }
    }
}

/// Which emulator a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Upstream {
    Carrier,
    LiveKit,
}

/// One upstream call of a flow: its emulator, its name, and which of that name's calls.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Call {
    upstream: Upstream,
    name: String,
    occurrence: usize,
    write: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct KillPoint {
    call: Call,
    moment: Moment,
}

impl std::fmt::Display for KillPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} {:?} {}#{} {}",
            self.moment,
            self.call.upstream,
            self.call.name,
            self.call.occurrence,
            if self.call.write { "(write)" } else { "(read)" }
        )
    }
}

/// The number one round works on, in an account of its own.
struct Subject {
    customer: String,
    number_id: String,
    e164: String,
    key_body: Value,
    twilio_account: Option<AccountSid>,
    telnyx_account: Option<String>,
    /// Twilio: the voice configuration before trunkline touched the number.
    voice_before: Option<trunkline_twilio::VoiceConfig>,
}

/// The emulators, the database and the server of one test.
struct World {
    carrier: Carrier,
    twilio: TwilioEmulator,
    telnyx: TelnyxEmulator,
    lk: LiveKitEmulator,
    settings: Settings,
    backend: Backend,
    server: TestServer,
    transcript: Transcript,
    rounds: usize,
    /// Numbers connected now, across rounds: what LiveKit must hold, no more.
    connected: usize,
    restarts: usize,
}

impl World {
    async fn start(carrier: Carrier, backend: Backend) -> Self {
        let twilio = support::emulator();
        let telnyx = TelnyxEmulator::start_with(TelnyxOptions {
            hang_for: HANG_FOR,
            workers: 2,
            ..TelnyxOptions::default()
        })
        .expect("the Telnyx emulator starts");
        let lk = livekit_emulator();
        let settings = Settings::new(&twilio, &backend)
            .with_livekit(&lk)
            // The emulators answer at once, but the suite runs beside other builds on 2
            // cores: 2 s (the other tests' Twilio timeout) was seen to run out.
            .with("TRUNKLINE_TWILIO_TIMEOUT_MS", "10000")
            .with("TRUNKLINE_TELNYX_API_BASE", &telnyx.api_base())
            .with("TRUNKLINE_TELNYX_TIMEOUT_MS", "2000")
            .with("TRUNKLINE_TELNYX_RETRY_BUDGET_MS", "1500")
            .with("TRUNKLINE_LEASE_TTL_MS", &LEASE_TTL_MS.to_string());
        let server = settings.start().await;
        Self {
            carrier,
            twilio,
            telnyx,
            lk,
            settings,
            backend,
            server,
            transcript: Transcript::default(),
            rounds: 0,
            connected: 0,
            restarts: 0,
        }
    }

    fn client(&self, subject: &Subject) -> Client<'_> {
        Client::new(
            &self.server,
            token(&subject.customer, &["customer"]),
            &self.transcript,
        )
    }

    /// A new account with one number, its credentials saved, and the flow's setup done.
    async fn subject(&mut self, flow: Flow) -> Subject {
        self.rounds += 1;
        let customer = format!("crash-{}", self.rounds);
        let subject = match self.carrier {
            Carrier::Twilio => {
                let c = support::Carrier::new(&self.twilio, &customer, 1);
                let pn = c.numbers[0].clone();
                let view = self.twilio.number(&pn).expect("the seeded number");
                Subject {
                    customer,
                    number_id: pn.to_string(),
                    e164: view.phone_number,
                    key_body: c.key_body(),
                    twilio_account: Some(c.account.sid.clone()),
                    telnyx_account: None,
                    voice_before: Some(view.voice),
                }
            }
            Carrier::Telnyx => {
                let account = self.telnyx.add_account(&customer);
                let n = self.telnyx.seed_numbers(&account.id, 1).remove(0);
                Subject {
                    customer,
                    number_id: n.id,
                    e164: n.phone_number,
                    key_body: support::telnyx::key_body(&account.api_key),
                    twilio_account: None,
                    telnyx_account: Some(account.id),
                    voice_before: None,
                }
            }
        };
        let path = self.carrier.path();
        let client = self.client(&subject);
        client
            .call(
                Method::POST,
                &format!("{path}/credentials"),
                &subject.key_body,
            )
            .await
            .ok();
        if let Some(body) = flow.setup() {
            let c = client
                .call(
                    Method::POST,
                    &format!("{path}/numbers/{}/connect", subject.number_id),
                    &body,
                )
                .await;
            assert_eq!(c.ok()["status"], "connected", "{}", c.body);
            self.connected += 1;
        }
        subject
    }

    /// How many requests each emulator has logged.
    fn marks(&self) -> (usize, usize) {
        let carrier = match self.carrier {
            Carrier::Twilio => self.twilio.requests().len(),
            Carrier::Telnyx => self.telnyx.requests().len(),
        };
        (carrier, self.lk.requests().len())
    }

    /// The upstream calls since `marks`, numbered per name.
    fn calls_since(&self, marks: (usize, usize)) -> Vec<Call> {
        let mut named: Vec<(Upstream, String, bool)> = match self.carrier {
            Carrier::Twilio => self
                .twilio
                .requests()
                .into_iter()
                .skip(marks.0)
                .map(|r| {
                    (
                        Upstream::Carrier,
                        format!("{:?}", r.route.expect("a route")),
                        r.method != "GET",
                    )
                })
                .collect(),
            Carrier::Telnyx => self
                .telnyx
                .requests()
                .into_iter()
                .skip(marks.0)
                .map(|r| {
                    (
                        Upstream::Carrier,
                        format!("{:?}", r.route.expect("a route")),
                        r.method != "GET",
                    )
                })
                .collect(),
        };
        named.extend(self.lk.requests().into_iter().skip(marks.1).map(|r| {
            let m = r.method.expect("a method");
            (Upstream::LiveKit, format!("{m:?}"), m.is_write())
        }));
        let mut seen: BTreeMap<(Upstream, String), usize> = BTreeMap::new();
        named
            .into_iter()
            .map(|(upstream, name, write)| {
                let n = seen.entry((upstream, name.clone())).or_default();
                let occurrence = *n;
                *n += 1;
                Call {
                    upstream,
                    name,
                    occurrence,
                    write,
                }
            })
            .collect()
    }

    fn arm(&self, point: &KillPoint) -> CrashPoint {
        let c = &point.call;
        match (c.upstream, self.carrier) {
            (Upstream::Carrier, Carrier::Twilio) => {
                self.twilio.crash_point(&c.name, c.occurrence, point.moment)
            }
            (Upstream::Carrier, Carrier::Telnyx) => {
                self.telnyx.crash_point(&c.name, c.occurrence, point.moment)
            }
            (Upstream::LiveKit, _) => self.lk.crash_point(&c.name, c.occurrence, point.moment),
        }
    }

    fn flow_path(&self, flow: Flow, subject: &Subject) -> (String, Value) {
        let (op, body) = flow.request();
        (
            format!("{}/numbers/{}/{op}", self.carrier.path(), subject.number_id),
            body,
        )
    }

    /// Run the flow with no crash; the upstream calls it made.
    async fn discover(&mut self, flow: Flow) -> Vec<Call> {
        let subject = self.subject(flow).await;
        let marks = self.marks();
        self.finish(flow, &subject).await;
        let calls = self.calls_since(marks);
        self.check(flow, &subject).await;
        calls
    }

    /// Run the flow, kill the server at `point`, restart it, retry, check.
    async fn crash_round(&mut self, flow: Flow, point: &KillPoint) {
        // Named before the round: a failure below is this point's.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!(
                "crash_anywhere {:?} {flow:?}: kill point {point}\n",
                self.carrier
            )
            .as_bytes(),
        );
        let subject = self.subject(flow).await;
        let gate = self.arm(point);
        let (path, body) = self.flow_path(flow, &subject);
        let request = self
            .server
            .client()
            .post(self.server.url(&path))
            .bearer_auth(token(&subject.customer, &["customer"]))
            .json(&body)
            .send();
        let in_flight = tokio::spawn(request);
        let reached = gate.wait_reached(Duration::from_secs(20)).await;
        if !reached {
            let answer = in_flight.await.ok().and_then(Result::ok);
            let answer = match answer {
                Some(a) => {
                    let status = a.status();
                    format!("{status} {}", a.text().await.unwrap_or_default())
                }
                None => "no answer".to_owned(),
            };
            panic!("{flow:?}: kill point {point} never reached; the flow answered {answer}");
        }
        self.server.stop();
        gate.release();
        in_flight.abort();
        self.restarts += 1;
        self.server = self.settings.start().await;
        self.finish(flow, &subject).await;
        self.check(flow, &subject).await;
    }

    /// Send the flow's request until it goes through (a lease the killed process held
    /// answers 409 until it expires).
    async fn finish(&mut self, flow: Flow, subject: &Subject) {
        let (path, body) = self.flow_path(flow, subject);
        let client = self.client(subject);
        let deadline = Instant::now() + RETRY_FOR;
        let reply: Reply = loop {
            let r = client.call(Method::POST, &path, &body).await;
            // 409: the killed process's lease lives on until it expires. 503 with
            // PROVIDER_UNAVAILABLE: an upstream answered too slowly (the tests set 2 s, and the
            // machine may be busy); a client retries both.
            let transient = r.status.as_u16() == 409
                || (r.status.as_u16() == 503 && r.body["errorCode"] == "PROVIDER_UNAVAILABLE");
            if transient && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            break r;
        };
        let want = match flow {
            Flow::Connect | Flow::Reconnect => "connected",
            Flow::Disconnect => "disconnected",
        };
        assert_eq!(reply.ok()["status"], want, "{flow:?}: {}", reply.body);
        match flow {
            Flow::Connect => self.connected += 1,
            Flow::Reconnect => {}
            Flow::Disconnect => self.connected -= 1,
        }
    }

    /// The end state of a flow, on every side.
    async fn check(&self, flow: Flow, subject: &Subject) {
        let what = format!("{:?} {flow:?} {}", self.carrier, subject.customer);
        let client = self.client(subject);
        let s = client
            .call(
                Method::GET,
                &format!(
                    "{}/numbers/{}/status",
                    self.carrier.path(),
                    subject.number_id
                ),
                &Value::Null,
            )
            .await;
        let s = s.ok().clone();
        let conn = &s["connection"];
        assert_eq!(s["drifts"], json!([]), "{what}: {s}");
        let targets = flow.targets();
        let stored_route = conn["routeId"].as_str().map(ToOwned::to_owned);

        // --- the carrier.
        match self.carrier {
            Carrier::Twilio => {
                let account = subject.twilio_account.as_ref().expect("a Twilio account");
                let pn = PhoneNumberSid::parse(&subject.number_id).expect("a PN sid");
                let ours: Vec<_> = self
                    .twilio
                    .trunks(account)
                    .into_iter()
                    .filter(|t| {
                        t.friendly_name
                            .as_deref()
                            .is_some_and(|n| n.starts_with("trunkline"))
                    })
                    .collect();
                let number = self.twilio.number(&pn).expect("the number");
                if targets.is_empty() {
                    assert!(ours.is_empty(), "{what}: trunks left: {ours:?}");
                    assert_eq!(number.trunk_sid, None, "{what}");
                    assert_eq!(Some(&number.voice), subject.voice_before.as_ref(), "{what}");
                } else {
                    assert_eq!(ours.len(), 1, "{what}: {ours:?}");
                    let trunk = &ours[0].sid;
                    assert_eq!(
                        self.twilio.trunk_numbers(trunk),
                        std::slice::from_ref(&pn),
                        "{what}"
                    );
                    assert_eq!(number.trunk_sid.as_ref(), Some(trunk), "{what}");
                    let urls = self.twilio.origination_urls(trunk);
                    let mut got: Vec<&str> = urls.iter().map(|u| u.sip_url.as_str()).collect();
                    got.sort_unstable();
                    assert_eq!(got, targets, "{what}: {urls:?}");
                    assert_eq!(stored_route.as_deref(), Some(trunk.as_str()), "{what}");
                    let live: BTreeSet<&str> = urls.iter().map(|u| u.sid.as_str()).collect();
                    assert_eq!(stored_target_ids(conn), live, "{what}: {conn}");
                }
                if let Some(route) = &stored_route {
                    let sid = trunkline_twilio::TrunkSid::parse(route).expect("a TK sid");
                    assert!(
                        self.twilio.trunk(&sid).is_some(),
                        "{what}: the record names trunk {route}, which is gone: {conn}"
                    );
                }
            }
            Carrier::Telnyx => {
                let account = subject.telnyx_account.as_deref().expect("a Telnyx account");
                let ours: Vec<_> = self
                    .telnyx
                    .connections(account)
                    .into_iter()
                    .filter(|c| c.connection_name.starts_with("trunkline"))
                    .collect();
                let number = self.telnyx.number(&subject.number_id).expect("the number");
                if targets.is_empty() {
                    assert!(ours.is_empty(), "{what}: connections left: {ours:?}");
                    assert_eq!(number.connection_id, None, "{what}");
                } else {
                    assert_eq!(ours.len(), 1, "{what}: {ours:?}");
                    let route = &ours[0].id;
                    assert_eq!(
                        self.telnyx.connection_numbers(route),
                        std::slice::from_ref(&subject.number_id),
                        "{what}"
                    );
                    assert_eq!(number.connection_id.as_ref(), Some(route), "{what}");
                    let fqdns = self.telnyx.fqdns(route);
                    let mut got: Vec<String> =
                        fqdns.iter().map(|f| format!("sip:{}", f.fqdn)).collect();
                    got.sort_unstable();
                    assert_eq!(got, targets, "{what}: {fqdns:?}");
                    assert_eq!(stored_route.as_deref(), Some(route.as_str()), "{what}");
                    let live: BTreeSet<&str> = fqdns.iter().map(|f| f.id.as_str()).collect();
                    assert_eq!(stored_target_ids(conn), live, "{what}: {conn}");
                }
                if let Some(route) = &stored_route {
                    assert!(
                        self.telnyx.connection(route).is_some(),
                        "{what}: the record names connection {route}, which is gone: {conn}"
                    );
                }
            }
        }

        // --- LiveKit: this number's trunk and rule, and nothing anybody lost track of.
        let holding = self.lk.trunks_for_number(&subject.e164);
        let lk_ids = &conn["livekit"];
        if targets.is_empty() {
            assert!(
                holding.is_empty(),
                "{what}: LiveKit trunks left: {holding:?}"
            );
            assert_eq!(conn["status"], "disconnected", "{what}: {conn}");
            assert_eq!(lk_ids["trunkId"], Value::Null, "{what}: {conn}");
            assert_eq!(lk_ids["ruleId"], Value::Null, "{what}: {conn}");
        } else {
            assert_eq!(conn["status"], "connected", "{what}: {conn}");
            assert_eq!(holding.len(), 1, "{what}: {holding:?}");
            let trunk = &holding[0].sip_trunk_id;
            assert_eq!(lk_ids["trunkId"].as_str(), Some(trunk.as_str()), "{what}");
            let rules = self.lk.rules_for_trunk(trunk);
            assert_eq!(rules.len(), 1, "{what}: {rules:?}");
            assert_eq!(
                lk_ids["ruleId"].as_str(),
                Some(rules[0].sip_dispatch_rule_id.as_str()),
                "{what}"
            );
        }
        let trunks = self.lk.trunks();
        let rules = self.lk.rules();
        assert_eq!(trunks.len(), self.connected, "{what}: LiveKit trunks");
        assert_eq!(rules.len(), self.connected, "{what}: LiveKit rules");
        let trunk_ids: BTreeSet<&str> = trunks.iter().map(|t| t.sip_trunk_id.as_str()).collect();
        for r in &rules {
            assert!(
                r.trunk_ids.iter().all(|t| trunk_ids.contains(t.as_str())),
                "{what}: a rule on a trunk that is gone: {r:?}"
            );
        }

        // --- leases: released, or expiring within their time.
        if let Some(longer) = self.leases_beyond(LEASE_TTL_MS).await {
            assert_eq!(longer, 0, "{what}: a lease lives past its time");
        }
    }

    /// Leases that expire more than `ms` from now (PostgreSQL; `None` on SQLite).
    async fn leases_beyond(&self, ms: u64) -> Option<i64> {
        let Backend::Postgres(db) = &self.backend else {
            return None;
        };
        let (client, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let secs = f64::from(u32::try_from(ms).unwrap_or(u32::MAX)) / 1000.0;
        let row = client
            .query_one(
                "SELECT count(*) FROM leases WHERE expires_at > now() + make_interval(secs => $1)",
                &[&secs],
            )
            .await
            .expect("count leases");
        Some(row.get::<_, i64>(0))
    }

    /// Every lease has expired once its time has passed since the last round.
    async fn all_leases_expire(&self) {
        tokio::time::sleep(Duration::from_millis(LEASE_TTL_MS + 200)).await;
        if let Some(live) = self.leases_beyond(0).await {
            assert_eq!(live, 0, "leases still held after their time");
        }
    }
}

/// The ids of the origination targets the stored record names.
fn stored_target_ids(conn: &Value) -> BTreeSet<&str> {
    conn["originationTargets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| t["id"].as_str().expect("an id"))
        .collect()
}

/// The kill points of a flow: every call before it, and after it with its answer lost.
fn kill_points(calls: &[Call]) -> Vec<KillPoint> {
    let mut points = Vec::new();
    for call in calls {
        for moment in [Moment::Before, Moment::After] {
            points.push(KillPoint {
                call: call.clone(),
                moment,
            });
        }
    }
    points
}

async fn every_kill_point(carrier: Carrier, flow: Flow) {
    let name = format!("crash_anywhere {carrier:?} {flow:?}");
    let Some(backend) = Backend::postgres_or_skip(&name).await else {
        return;
    };
    let mut world = World::start(carrier, backend).await;
    let started = Instant::now();
    let calls = world.discover(flow).await;
    assert!(!calls.is_empty(), "{flow:?} made no upstream call");
    let points = kill_points(&calls);
    for point in &points {
        world.crash_round(flow, point).await;
    }
    world.all_leases_expire().await;
    let listed: Vec<String> = points.iter().map(ToString::to_string).collect();
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "{name}: {} kill points, {} restarts, all consistent, {:.1?}\n  {}\n",
            points.len(),
            world.restarts,
            started.elapsed(),
            listed.join("\n  ")
        )
        .as_bytes(),
    );
}

macro_rules! every_kill_point {
    ($($test:ident: $carrier:ident $flow:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $test() {
            every_kill_point(Carrier::$carrier, Flow::$flow).await;
        }
    )*};
}

every_kill_point!(
    twilio_connect: Twilio Connect,
    twilio_reconnect: Twilio Reconnect,
    twilio_disconnect: Twilio Disconnect,
    telnyx_connect: Telnyx Connect,
    telnyx_reconnect: Telnyx Reconnect,
    telnyx_disconnect: Telnyx Disconnect,
);

/// Random rounds: `CRASH_SOAK_ROUNDS` (default 50), seeded by `CRASH_SOAK_SEED` (printed).
#[tokio::test]
#[ignore = "long: run by scripts/soak"]
async fn soak() {
    let Some(_) = Backend::postgres_or_skip("crash_anywhere soak").await else {
        return;
    };
    let rounds: usize = std::env::var("CRASH_SOAK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("CRASH_SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut worlds = Vec::new();
    for carrier in [Carrier::Twilio, Carrier::Telnyx] {
        let backend = Backend::postgres_or_skip("crash_anywhere soak")
            .await
            .expect("PostgreSQL");
        worlds.push(World::start(carrier, backend).await);
    }
    // Each flow's calls, per carrier, from a clean run.
    let mut calls: BTreeMap<(Carrier, Flow), Vec<Call>> = BTreeMap::new();
    for world in &mut worlds {
        for flow in FLOWS {
            let c = world.discover(flow).await;
            calls.insert((world.carrier, flow), c);
        }
    }
    let mut hits: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..rounds {
        let world = &mut worlds[rng.random_range(0..2)];
        let flow = FLOWS[rng.random_range(0..FLOWS.len())];
        let points = kill_points(&calls[&(world.carrier, flow)]);
        let point = &points[rng.random_range(0..points.len())];
        world.crash_round(flow, point).await;
        *hits
            .entry(format!("{:?} {flow:?} {point}", world.carrier))
            .or_default() += 1;
    }
    for world in &worlds {
        world.all_leases_expire().await;
    }
    let total: usize = calls.values().map(|c| kill_points(c).len()).sum();
    let mut report = format!(
        "crash soak: seed {seed}, {rounds} rounds, {} restarts, {} of {total} kill points hit, \
         all consistent, {:.0?}\n",
        worlds.iter().map(|w| w.restarts).sum::<usize>(),
        hits.len(),
        started.elapsed()
    );
    for (point, n) in &hits {
        let _ = writeln!(report, "  {n:>4}  {point}");
    }
    let _ = std::io::Write::write_all(&mut std::io::stderr(), report.as_bytes());
}
