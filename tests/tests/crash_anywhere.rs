//! Crash anywhere: `trunkline` killed with SIGKILL in the middle of connect, reconnect and
//! disconnect, connect with outbound, placing an outbound call, and bulk connect and
//! disconnect jobs, on PostgreSQL, with Twilio and with Telnyx (and LiveKit), then restarted
//! and the operation retried (a job: taken over by the new instance).
//!
//! The kill points are not left to luck. A first run of each flow records the upstream calls
//! it makes, per emulator; then, for every call, the emulator holds that very request
//! ([`trunkline_testkit::crashpoint`]) once before serving it and once after serving it
//! (the change made, the answer never received), the test kills the process at that moment,
//! starts a new one on the same database, retries until the operation succeeds, and checks the
//! end state: one route, one origination target per SIP target, one attachment, one LiveKit
//! trunk and rule per connected number, no orphan at the carrier or at LiveKit, the stored
//! record matching both sides, no lease living past its time. With outbound: one credential
//! list (Twilio) or outbound voice profile (Telnyx) and one LiveKit outbound trunk per route,
//! attached, status without drift. A placed call, retried with its `Idempotency-Key`: one
//! call dialled at LiveKit, one call record, its agent dispatched once. A job: completed, one
//! result per number, each number connected (or disconnected) as above.
//!
//! Every test takes every point of its flows once: `twilio_connect`, … `telnyx_disconnect`,
//! `twilio_outbound` and `telnyx_outbound` (placing a call, connect with outbound), and
//! `twilio_bulk_jobs` and `telnyx_bulk_jobs`. `CRASH_FEWER_POINTS=1` makes the outbound and
//! job flows take one point per distinct upstream call instead (after a write, before a read),
//! for a quicker run while working on them; `CRASH_ONLY=<flow>` runs one
//! flow (`PlaceCall`, `BulkConnect`, …). `soak` (ignored; run by
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

use support::livekit::{livekit_emulator, outbound_trunks};
use support::{Backend, Client, HANG_FOR, SIP_TARGET, Settings, Transcript, token};

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
    /// A first connect with `"outbound": true`: termination at the carrier and a LiveKit
    /// outbound trunk besides the inbound half.
    ConnectOutbound,
    /// `POST /telephony/calls` from a number connected with outbound, with an
    /// `Idempotency-Key`, waiting until answered.
    PlaceCall,
    /// A bulk connect job of two numbers (shared trunk).
    BulkConnect,
    /// A bulk disconnect job of two numbers, each on a dedicated trunk.
    BulkDisconnect,
}

/// What a flow sends.
enum Request {
    /// `POST <carrier>/numbers/<id>/<op>`.
    Number(&'static str, Value),
    /// `POST /telephony/calls`.
    Call(Value),
    /// `POST <carrier>/numbers:<op>`: a job.
    Bulk(&'static str),
}

const FLOWS: [Flow; 7] = [
    Flow::Connect,
    Flow::Reconnect,
    Flow::Disconnect,
    Flow::ConnectOutbound,
    Flow::PlaceCall,
    Flow::BulkConnect,
    Flow::BulkDisconnect,
];

/// The routing of every connect here.
fn routing() -> Value {
    json!({"agentName": "support-agent"})
}

/// Whom the outbound calls call.
const CALLEE: &str = "+14155550199";

impl Flow {
    /// The connect each number must have had before the flow starts, if any.
    fn setup(self) -> Option<Value> {
        match self {
            Self::Connect | Self::ConnectOutbound | Self::BulkConnect => None,
            Self::Reconnect => Some(json!({"routing": routing()})),
            // Dedicated trunks: the last number leaving one deletes it, so nothing may be left.
            Self::Disconnect | Self::BulkDisconnect => {
                Some(json!({"trunkStrategy": "dedicated", "routing": routing()}))
            }
            Self::PlaceCall => Some(json!({"routing": routing(), "outbound": true})),
        }
    }

    /// How many numbers the flow works on.
    fn numbers(self) -> usize {
        match self {
            Self::BulkConnect | Self::BulkDisconnect => 2,
            _ => 1,
        }
    }

    fn request(self) -> Request {
        match self {
            Self::Connect => Request::Number("connect", json!({"routing": routing()})),
            Self::Reconnect => Request::Number(
                "connect",
                json!({"sipTarget": OTHER_TARGET, "routing": {"agentName": "agent-b"}}),
            ),
            Self::Disconnect => Request::Number("disconnect", json!({"restoreVoiceConfig": true})),
            Self::ConnectOutbound => {
                Request::Number("connect", json!({"routing": routing(), "outbound": true}))
            }
            Self::PlaceCall => Request::Call(json!({"to": CALLEE, "waitUntilAnswered": true})),
            Self::BulkConnect => Request::Bulk("connect"),
            Self::BulkDisconnect => Request::Bulk("disconnect"),
        }
    }

    /// The SIP targets the numbers end with; none once disconnected.
    fn targets(self) -> Vec<&'static str> {
        match self {
            Self::Connect | Self::ConnectOutbound | Self::PlaceCall | Self::BulkConnect => {
                vec![SIP_TARGET]
            }
            Self::Reconnect => vec![OTHER_TARGET],
            Self::Disconnect | Self::BulkDisconnect => vec![],
        }
    }

    /// Whether the numbers end with an outbound half.
    fn outbound(self) -> bool {
        matches!(self, Self::ConnectOutbound | Self::PlaceCall)
    }

    /// Whether `CRASH_FEWER_POINTS=1` leaves the flow's every point alone (see
    /// [`fewer_points`]).
    fn always_every_point(self) -> bool {
        matches!(self, Self::Connect | Self::Reconnect | Self::Disconnect)
    }

    /// What a job's number must end as.
    fn job_results(self) -> &'static [&'static str] {
        match self {
            Self::BulkConnect => &["connected", "reused"],
            Self::BulkDisconnect => &["disconnected", "already_disconnected"],
            _ => &[],
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

/// One number of a round.
struct Number {
    id: String,
    e164: String,
    /// Twilio: the voice configuration before trunkline touched the number.
    voice_before: Option<trunkline_twilio::VoiceConfig>,
}

/// The numbers one round works on, in an account of their own.
struct Subject {
    customer: String,
    numbers: Vec<Number>,
    key_body: Value,
    twilio_account: Option<AccountSid>,
    telnyx_account: Option<String>,
    /// The round's `Idempotency-Key` (outbound calls).
    call_key: String,
    /// The job a bulk flow queued, once its answer came.
    job: Option<String>,
}

impl Subject {
    fn first(&self) -> &Number {
        &self.numbers[0]
    }
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
    /// Routes with an outbound half now, across rounds: LiveKit's outbound trunks.
    outbound_routes: usize,
    /// Calls (customer, call id, room) whose agent a killed instance was dispatching: the
    /// retrier's, once that instance's claim has run out.
    pending_dispatch: std::sync::Mutex<Vec<(String, String, String)>>,
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
            // Twilio's timeout is the suite's 10 s (`Settings::new`); Telnyx's the same.
            .with("TRUNKLINE_TELNYX_API_BASE", &telnyx.api_base())
            .with("TRUNKLINE_TELNYX_TIMEOUT_MS", "10000")
            .with("TRUNKLINE_TELNYX_RETRY_BUDGET_MS", "1500")
            .with("TRUNKLINE_LEASE_TTL_MS", &LEASE_TTL_MS.to_string())
            // Jobs: the shortest claim, so a killed instance's job is taken over within
            // seconds; one number at a time, so the kill points are the same every run.
            .with("TRUNKLINE_JOBS_CLAIM_TTL_SECS", "2")
            .with("TRUNKLINE_JOBS_POLL_INTERVAL_MS", "50")
            .with("TRUNKLINE_JOBS_PARALLELISM", "1")
            // A call whose dispatch claim a killed instance held is dispatched soon after the
            // claim runs out: the least claim the servers accept with the LiveKit timeout of
            // the tests (4 × 5 s), not the default 60 s.
            .with("TRUNKLINE_DISPATCH_CLAIM_TTL_SECS", "20")
            .with("TRUNKLINE_DISPATCH_RETRY_INTERVAL_MS", "500");
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
            outbound_routes: 0,
            pending_dispatch: std::sync::Mutex::default(),
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

    /// A new account with the flow's numbers, its credentials saved, and the flow's setup
    /// done.
    async fn subject(&mut self, flow: Flow) -> Subject {
        self.rounds += 1;
        let customer = format!("crash-{}", self.rounds);
        let n = flow.numbers();
        let subject = match self.carrier {
            Carrier::Twilio => {
                let c = support::Carrier::new(&self.twilio, &customer, n);
                let numbers = c
                    .numbers
                    .iter()
                    .map(|pn| {
                        let view = self.twilio.number(pn).expect("the seeded number");
                        Number {
                            id: pn.to_string(),
                            e164: view.phone_number,
                            voice_before: Some(view.voice),
                        }
                    })
                    .collect();
                Subject {
                    customer: customer.clone(),
                    numbers,
                    key_body: c.key_body(),
                    twilio_account: Some(c.account.sid.clone()),
                    telnyx_account: None,
                    call_key: format!("call-{customer}"),
                    job: None,
                }
            }
            Carrier::Telnyx => {
                let account = self.telnyx.add_account(&customer);
                let numbers = self
                    .telnyx
                    .seed_numbers(&account.id, n)
                    .into_iter()
                    .map(|n| Number {
                        id: n.id,
                        e164: n.phone_number,
                        voice_before: None,
                    })
                    .collect();
                Subject {
                    customer: customer.clone(),
                    numbers,
                    key_body: support::telnyx::key_body(&account.api_key),
                    twilio_account: None,
                    telnyx_account: Some(account.id),
                    call_key: format!("call-{customer}"),
                    job: None,
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
            let mut connected = 0;
            for number in &subject.numbers {
                let c = client
                    .call(
                        Method::POST,
                        &format!("{path}/numbers/{}/connect", number.id),
                        &body,
                    )
                    .await;
                assert_eq!(c.ok()["status"], "connected", "{}", c.body);
                connected += 1;
            }
            self.connected += connected;
            if flow.outbound() {
                self.outbound_routes += 1;
            }
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

    /// The flow's request, ready to send.
    fn request(&self, flow: Flow, subject: &Subject) -> reqwest::RequestBuilder {
        let (path, body) = match flow.request() {
            Request::Number(op, body) => (
                format!(
                    "{}/numbers/{}/{op}",
                    self.carrier.path(),
                    subject.first().id
                ),
                body,
            ),
            Request::Call(mut body) => {
                body["from"] = json!(subject.first().e164);
                ("/telephony/calls".to_owned(), body)
            }
            Request::Bulk(op) => {
                let ids: Vec<&str> = subject.numbers.iter().map(|n| n.id.as_str()).collect();
                (
                    format!("{}/numbers:{op}", self.carrier.path()),
                    if op == "disconnect" {
                        json!({"numberIds": ids, "restoreVoiceConfig": true})
                    } else {
                        json!({"numberIds": ids})
                    },
                )
            }
        };
        let mut req = self
            .server
            .client()
            .post(self.server.url(&path))
            .bearer_auth(token(&subject.customer, &["customer"]))
            .json(&body);
        if matches!(flow, Flow::PlaceCall) {
            req = req.header("Idempotency-Key", &subject.call_key);
        }
        req
    }

    /// Send the flow's request once: its status and JSON body, or `None` when the
    /// connection failed.
    async fn send(&self, flow: Flow, subject: &Subject) -> Option<(u16, Value)> {
        let res = self.request(flow, subject).send().await.ok()?;
        let status = res.status().as_u16();
        let text = res.text().await.ok()?;
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {status}: {text}"));
        Some((status, body))
    }

    /// Run the flow with no crash; the upstream calls it made.
    async fn discover(&mut self, flow: Flow) -> Vec<Call> {
        let mut subject = self.subject(flow).await;
        let marks = self.marks();
        let answer = self.finish(flow, &mut subject).await;
        let calls = self.calls_since(marks);
        self.check(flow, &subject, &answer).await;
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
        let mut subject = self.subject(flow).await;
        let gate = self.arm(point);
        let in_flight = if matches!(flow.request(), Request::Bulk(_)) {
            // A job is answered at once and runs in the background: its id first.
            let (status, body) = self.send(flow, &subject).await.expect("an answer");
            assert_eq!(status, 202, "{body}");
            subject.job = body["jobId"].as_str().map(ToOwned::to_owned);
            None
        } else {
            Some(tokio::spawn(self.request(flow, &subject).send()))
        };
        let reached = gate.wait_reached(Duration::from_secs(20)).await;
        if !reached {
            let answer = match in_flight {
                Some(f) => f.await.ok().and_then(Result::ok),
                None => None,
            };
            let answer = match answer {
                Some(a) => {
                    let status = a.status();
                    format!("{status} {}", a.text().await.unwrap_or_default())
                }
                None => format!("no answer (job {:?})", subject.job),
            };
            panic!("{flow:?}: kill point {point} never reached; the flow answered {answer}");
        }
        self.server.stop();
        gate.release();
        if let Some(f) = in_flight {
            f.abort();
        }
        self.restarts += 1;
        self.server = self.settings.start().await;
        let answer = self.finish(flow, &mut subject).await;
        self.check(flow, &subject, &answer).await;
    }

    /// Send the flow's request until it goes through (a lease the killed process held
    /// answers 409 until it expires), or for a job, wait until it has finished (taken over by
    /// this instance once the killed one's claim has run out); the final answer.
    async fn finish(&mut self, flow: Flow, subject: &mut Subject) -> Value {
        if matches!(flow.request(), Request::Bulk(_)) {
            return self.finish_job(flow, subject).await;
        }
        let deadline = Instant::now() + RETRY_FOR;
        let (status, body) = loop {
            let Some((status, body)) = self.send(flow, subject).await else {
                // The connection failed (a pooled one the killed server had): send again.
                assert!(Instant::now() < deadline, "{flow:?}: no answer");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            // 409: the killed process's lease lives on until it expires. 503 with
            // PROVIDER_UNAVAILABLE: an upstream answered too slowly (the tests set 10 s, and the
            // machine may be busy); 429: a call's rate, held by the killed request. A client
            // retries all three.
            let transient = status == 409
                || status == 429
                || (status == 503 && body["errorCode"] == "PROVIDER_UNAVAILABLE");
            if transient && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            break (status, body);
        };
        match flow {
            Flow::PlaceCall => {
                assert_eq!(status, 201, "{flow:?}: {body}");
                assert_eq!(body["status"], "answered", "{flow:?}: {body}");
            }
            Flow::Disconnect => {
                assert_eq!(body["status"], "disconnected", "{flow:?} {status}: {body}");
            }
            _ => assert_eq!(body["status"], "connected", "{flow:?} {status}: {body}"),
        }
        match flow {
            Flow::Connect => self.connected += 1,
            Flow::ConnectOutbound => {
                self.connected += 1;
                self.outbound_routes += 1;
            }
            Flow::Disconnect => self.connected -= 1,
            _ => {}
        }
        body
    }

    /// Queue the job (unless the round did) and wait until it has finished: completed, one
    /// result per number, each the flow's.
    async fn finish_job(&mut self, flow: Flow, subject: &mut Subject) -> Value {
        let id = if let Some(id) = &subject.job {
            id.clone()
        } else {
            let (status, body) = self.send(flow, subject).await.expect("an answer");
            assert_eq!(status, 202, "{body}");
            let id = body["jobId"].as_str().expect("a job id").to_owned();
            subject.job = Some(id.clone());
            id
        };
        let client = self.client(subject);
        let deadline = Instant::now() + RETRY_FOR;
        let job = loop {
            let r = client
                .call(Method::GET, &format!("/telephony/jobs/{id}"), &Value::Null)
                .await;
            let job = r.ok().clone();
            if matches!(job["status"].as_str(), Some("completed" | "cancelled")) {
                break job;
            }
            assert!(
                Instant::now() < deadline,
                "{flow:?}: job {id} not finished within {RETRY_FOR:?}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(job["status"], "completed", "{flow:?}: {job}");
        assert_eq!(job["progress"]["failed"], 0, "{flow:?}: {job}");
        let items = job["items"].as_array().expect("items");
        let mut ids: Vec<&str> = items
            .iter()
            .map(|i| i["numberId"].as_str().expect("a number id"))
            .collect();
        ids.sort_unstable();
        let mut want: Vec<&str> = subject.numbers.iter().map(|n| n.id.as_str()).collect();
        want.sort_unstable();
        assert_eq!(ids, want, "{flow:?}: one result per number: {job}");
        for item in items {
            let result = item["result"].as_str().unwrap_or_default();
            assert!(
                flow.job_results().contains(&result),
                "{flow:?}: {result}: {job}"
            );
        }
        let n = subject.numbers.len();
        match flow {
            Flow::BulkConnect => self.connected += n,
            Flow::BulkDisconnect => self.connected -= n,
            _ => {}
        }
        job
    }

    /// The end state of a flow, on every side.
    async fn check(&self, flow: Flow, subject: &Subject, answer: &Value) {
        let what = format!("{:?} {flow:?} {}", self.carrier, subject.customer);
        let client = self.client(subject);
        let mut statuses = Vec::new();
        for number in &subject.numbers {
            let s = client
                .call(
                    Method::GET,
                    &format!("{}/numbers/{}/status", self.carrier.path(), number.id),
                    &Value::Null,
                )
                .await;
            let s = s.ok().clone();
            assert_eq!(s["drifts"], json!([]), "{what}: {s}");
            statuses.push(s);
        }
        let targets = flow.targets();
        let routes: BTreeSet<Option<&str>> = statuses
            .iter()
            .map(|s| s["connection"]["routeId"].as_str())
            .collect();
        assert_eq!(routes.len(), 1, "{what}: one route for all: {routes:?}");
        let stored_route = routes.into_iter().next().flatten().map(ToOwned::to_owned);

        // --- the carrier.
        match self.carrier {
            Carrier::Twilio => {
                let account = subject.twilio_account.as_ref().expect("a Twilio account");
                let pns: Vec<PhoneNumberSid> = subject
                    .numbers
                    .iter()
                    .map(|n| PhoneNumberSid::parse(&n.id).expect("a PN sid"))
                    .collect();
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
                if targets.is_empty() {
                    assert!(ours.is_empty(), "{what}: trunks left: {ours:?}");
                    for (pn, number) in pns.iter().zip(&subject.numbers) {
                        let now = self.twilio.number(pn).expect("the number");
                        assert_eq!(now.trunk_sid, None, "{what}");
                        assert_eq!(Some(&now.voice), number.voice_before.as_ref(), "{what}");
                    }
                } else {
                    assert_eq!(ours.len(), 1, "{what}: {ours:?}");
                    let trunk = &ours[0].sid;
                    let mut on_trunk = self.twilio.trunk_numbers(trunk);
                    on_trunk.sort();
                    let mut want = pns.clone();
                    want.sort();
                    assert_eq!(on_trunk, want, "{what}");
                    for pn in &pns {
                        let now = self.twilio.number(pn).expect("the number");
                        assert_eq!(now.trunk_sid.as_ref(), Some(trunk), "{what}");
                    }
                    let urls = self.twilio.origination_urls(trunk);
                    let mut got: Vec<&str> = urls.iter().map(|u| u.sip_url.as_str()).collect();
                    got.sort_unstable();
                    assert_eq!(got, targets, "{what}: {urls:?}");
                    assert_eq!(stored_route.as_deref(), Some(trunk.as_str()), "{what}");
                    let live: BTreeSet<&str> = urls.iter().map(|u| u.sid.as_str()).collect();
                    for s in &statuses {
                        assert_eq!(stored_target_ids(&s["connection"]), live, "{what}: {s}");
                    }
                    let lists = self.twilio.credential_lists(account);
                    if flow.outbound() {
                        assert!(
                            self.twilio
                                .trunk(trunk)
                                .and_then(|t| t.domain_name)
                                .is_some(),
                            "{what}: no termination domain"
                        );
                        assert_eq!(lists.len(), 1, "{what}: credential lists {lists:?}");
                        let list = &lists[0].0;
                        assert_eq!(
                            self.twilio.trunk_credential_lists(trunk),
                            std::slice::from_ref(list),
                            "{what}"
                        );
                        let creds = self.twilio.sip_credentials(list);
                        assert_eq!(creds.len(), 1, "{what}: credentials {}", creds.len());
                        self.check_outbound_trunk(&what, subject, &creds[0].0, &statuses);
                    } else {
                        assert!(lists.is_empty(), "{what}: credential lists {lists:?}");
                    }
                }
                if let Some(route) = &stored_route {
                    let sid = trunkline_twilio::TrunkSid::parse(route).expect("a TK sid");
                    assert!(
                        self.twilio.trunk(&sid).is_some(),
                        "{what}: the record names trunk {route}, which is gone"
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
                let profiles = self.telnyx.voice_profiles(account);
                if targets.is_empty() {
                    assert!(ours.is_empty(), "{what}: connections left: {ours:?}");
                    for number in &subject.numbers {
                        let now = self.telnyx.number(&number.id).expect("the number");
                        assert_eq!(now.connection_id, None, "{what}");
                    }
                } else {
                    assert_eq!(ours.len(), 1, "{what}: {ours:?}");
                    let route = &ours[0].id;
                    let mut on_route = self.telnyx.connection_numbers(route);
                    on_route.sort();
                    let mut want: Vec<String> =
                        subject.numbers.iter().map(|n| n.id.clone()).collect();
                    want.sort();
                    assert_eq!(on_route, want, "{what}");
                    for number in &subject.numbers {
                        let now = self.telnyx.number(&number.id).expect("the number");
                        assert_eq!(now.connection_id.as_ref(), Some(route), "{what}");
                    }
                    let fqdns = self.telnyx.fqdns(route);
                    let mut got: Vec<String> =
                        fqdns.iter().map(|f| format!("sip:{}", f.fqdn)).collect();
                    got.sort_unstable();
                    assert_eq!(got, targets, "{what}: {fqdns:?}");
                    assert_eq!(stored_route.as_deref(), Some(route.as_str()), "{what}");
                    let live: BTreeSet<&str> = fqdns.iter().map(|f| f.id.as_str()).collect();
                    for s in &statuses {
                        assert_eq!(stored_target_ids(&s["connection"]), live, "{what}: {s}");
                    }
                    if flow.outbound() {
                        let auth = self.telnyx.outbound_auth(route).expect("the connection");
                        assert_eq!(auth.method, "credential-authentication", "{what}");
                        assert_eq!(profiles.len(), 1, "{what}: profiles {profiles:?}");
                        assert_eq!(
                            profiles[0].connections,
                            std::slice::from_ref(route),
                            "{what}"
                        );
                        let username = auth.user_name.clone().unwrap_or_default();
                        self.check_outbound_trunk(&what, subject, &username, &statuses);
                    }
                }
                if !flow.outbound() {
                    assert!(profiles.is_empty(), "{what}: profiles {profiles:?}");
                }
                if let Some(route) = &stored_route {
                    assert!(
                        self.telnyx.connection(route).is_some(),
                        "{what}: the record names connection {route}, which is gone"
                    );
                }
            }
        }

        // --- LiveKit: each number's trunk and rule, and nothing anybody lost track of.
        for (number, s) in subject.numbers.iter().zip(&statuses) {
            let conn = &s["connection"];
            let holding = self.lk.trunks_for_number(&number.e164);
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
        let outbound = outbound_trunks(&self.lk);
        assert_eq!(
            outbound.len(),
            self.outbound_routes,
            "{what}: LiveKit outbound trunks {outbound:?}"
        );

        if flow == Flow::PlaceCall {
            self.check_call(&what, subject, answer).await;
        }

        // --- leases: released, or expiring within their time.
        if let Some(longer) = self.leases_beyond(LEASE_TTL_MS).await {
            assert_eq!(longer, 0, "{what}: a lease lives past its time");
        }
    }

    /// The route's LiveKit outbound trunk: this number in its list, the carrier's username,
    /// and the number's status says the outbound half is whole.
    fn check_outbound_trunk(
        &self,
        what: &str,
        subject: &Subject,
        username: &str,
        statuses: &[Value],
    ) {
        let e164 = &subject.first().e164;
        let holding: Vec<_> = outbound_trunks(&self.lk)
            .into_iter()
            .filter(|t| t.numbers.contains(e164))
            .collect();
        assert_eq!(holding.len(), 1, "{what}: outbound trunks {holding:?}");
        assert_eq!(holding[0].numbers, std::slice::from_ref(e164), "{what}");
        assert_eq!(holding[0].auth_username, username, "{what}");
        for s in statuses {
            let outbound = &s["outbound"];
            assert_eq!(outbound["enabled"], true, "{what}: {outbound}");
            assert_eq!(outbound["drift"], json!([]), "{what}: {outbound}");
        }
    }

    /// One call dialled at LiveKit from this number, into the room of the one call record,
    /// which the answer names; its agent dispatched once.
    async fn check_call(&self, what: &str, subject: &Subject, answer: &Value) {
        let from = &subject.first().e164;
        let dialled: Vec<_> = self
            .lk
            .outbound_calls()
            .into_iter()
            .filter(|c| &c.from == from)
            .collect();
        assert_eq!(dialled.len(), 1, "{what}: calls dialled {dialled:?}");
        let room = answer["roomName"].as_str().expect("a room");
        assert_eq!(dialled[0].room, room, "{what}: {answer}");
        assert_eq!(dialled[0].to, CALLEE, "{what}");
        let dispatched = self.lk.dispatch_history(room).len();
        assert!(
            dispatched <= 1,
            "{what}: the agent dispatched {dispatched} times"
        );
        let client = self.client(subject);
        let id = answer["callId"].as_str().expect("a call id");
        let record = client
            .call(Method::GET, &format!("/telephony/calls/{id}"), &Value::Null)
            .await;
        let record = record.ok();
        if dispatched == 0 || record["dispatchStatus"] != "dispatched" {
            // The killed instance held the call's dispatch claim: the background retrier
            // dispatches once the claim has run out (20 s here). Checked at the end.
            self.pending_dispatch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((subject.customer.clone(), id.to_owned(), room.to_owned()));
        }
        assert_eq!(record["direction"], "outbound", "{what}: {record}");
        assert_eq!(record["roomName"], room, "{what}: {record}");
        assert_eq!(record["caller"], from.as_str(), "{what}: {record}");
        assert_eq!(record["called"], CALLEE, "{what}: {record}");
        let s = client
            .call(
                Method::GET,
                &format!(
                    "{}/numbers/{}/status",
                    self.carrier.path(),
                    subject.first().id
                ),
                &Value::Null,
            )
            .await;
        let recent = s.ok()["recentCalls"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(recent.len(), 1, "{what}: call records {recent:?}");
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

    /// Every call whose dispatch a killed instance held has its agent, once: at LiveKit, and
    /// in its record.
    async fn all_dispatched(&self) {
        let pending = std::mem::take(
            &mut *self
                .pending_dispatch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let deadline = Instant::now() + Duration::from_secs(150);
        for (customer, id, room) in &pending {
            let client = Client::new(
                &self.server,
                token(customer, &["customer"]),
                &self.transcript,
            );
            loop {
                let record = client
                    .call(Method::GET, &format!("/telephony/calls/{id}"), &Value::Null)
                    .await;
                let history = self.lk.dispatch_history(room).len();
                assert!(history <= 1, "{room}: dispatched {history} times");
                if history == 1 && record.ok()["dispatchStatus"] == "dispatched" {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{room}: the agent never dispatched: {}",
                    record.body
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        if !pending.is_empty() {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!(
                    "crash_anywhere {:?}: {} calls dispatched by the retrier after the kill\n",
                    self.carrier,
                    pending.len()
                )
                .as_bytes(),
            );
        }
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

/// `CRASH_FEWER_POINTS=1`: the flows added for outbound and jobs take one kill point per
/// call name (a quicker run while working on them); by default every flow takes every point.
fn fewer_points() -> bool {
    std::env::var("CRASH_FEWER_POINTS").is_ok_and(|v| v == "1")
}

/// One kill point per distinct upstream call of a flow, at its first occurrence: after a
/// write (the change made, the answer lost: a kill before it is much like one after the call
/// before), before a read (after it, nothing has changed either).
fn one_point_per_call_name(calls: &[Call]) -> Vec<KillPoint> {
    calls
        .iter()
        .filter(|c| c.occurrence == 0)
        .map(|call| KillPoint {
            call: call.clone(),
            moment: if call.write {
                Moment::After
            } else {
                Moment::Before
            },
        })
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

/// Every kill point of each flow in turn, on one server and its emulators.
async fn every_kill_point(carrier: Carrier, flows: &[Flow]) {
    let name = format!("crash_anywhere {carrier:?} {flows:?}");
    let Some(backend) = Backend::postgres_or_skip(&name).await else {
        return;
    };
    let mut world = World::start(carrier, backend).await;
    let started = Instant::now();
    let mut listed = Vec::new();
    let mut total = 0;
    // `CRASH_ONLY=PlaceCall` (a flow's name): that flow only, to chase one failure.
    let only = std::env::var("CRASH_ONLY").ok();
    for &flow in flows {
        if only.as_ref().is_some_and(|o| *o != format!("{flow:?}")) {
            continue;
        }
        let calls = world.discover(flow).await;
        assert!(!calls.is_empty(), "{flow:?} made no upstream call");
        let points = if flow.always_every_point() || !fewer_points() {
            kill_points(&calls)
        } else {
            one_point_per_call_name(&calls)
        };
        for point in &points {
            world.crash_round(flow, point).await;
        }
        total += points.len();
        listed.push(format!("{flow:?}: {} kill points", points.len()));
        listed.extend(points.iter().map(|p| format!("  {p}")));
    }
    world.all_dispatched().await;
    world.all_leases_expire().await;
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "{name}: {total} kill points, {} restarts, all consistent, {:.1?}\n  {}\n",
            world.restarts,
            started.elapsed(),
            listed.join("\n  ")
        )
        .as_bytes(),
    );
}

macro_rules! every_kill_point {
    ($($test:ident: $carrier:ident $($flow:ident)+),* $(,)?) => {$(
        #[tokio::test]
        async fn $test() {
            every_kill_point(Carrier::$carrier, &[$(Flow::$flow),+]).await;
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
    // Placing a call first: the calls whose dispatch a killed instance held get their agent
    // once that claim runs out (20 s here), which the outbound connect's rounds take.
    twilio_outbound: Twilio PlaceCall ConnectOutbound,
    telnyx_outbound: Telnyx PlaceCall ConnectOutbound,
    twilio_bulk_jobs: Twilio BulkConnect BulkDisconnect,
    telnyx_bulk_jobs: Telnyx BulkConnect BulkDisconnect,
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
        world.all_dispatched().await;
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
