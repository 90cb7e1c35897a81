//! The database goes away under load and comes back.
//!
//! A PostgreSQL cluster of the test's own (`initdb` and `pg_ctl` in a temporary directory, on
//! a free port: never the shared server) backs two `trunkline` instances. Webhooks of calls
//! arrive and numbers are connected and disconnected the whole time, each sender retrying as
//! LiveKit and a client would. The cluster is stopped (`-m immediate`: as a crash), then
//! started again. While it is down `/readyz` answers 503, `/healthz` 200, and routes and the
//! webhook 503 `SERVICE_UNAVAILABLE` (never 500), so LiveKit retries. Once it is back both
//! instances serve again without a restart; every call is dispatched exactly once, and every
//! number ends as its last successful operation left it, on both sides.

// The cluster is the test's own: `on_both_backends!` goes unused.
#[allow(unused_macros)]
mod support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use trunkline_e2e::TestServer;
use trunkline_testkit::livekit::{CallScript, LiveKitEmulator};
use trunkline_twilio::PhoneNumberSid;

use support::livekit::{SETTLE, call_by_room, livekit_emulator, wait_for, webhook_url};
use support::{Backend, Carrier, Client, Settings, Transcript, emulator, token};

/// How long a dispatch claim outlives its holder (`TRUNKLINE_DISPATCH_CLAIM_TTL_SECS`): the
/// least the servers accept with the LiveKit timeout of the tests (5 s), so that a dispatch
/// made just as the database went away is recorded 20 s later, not 60 s (the default).
const CLAIM_TTL: Duration = Duration::from_secs(20);

/// A PostgreSQL cluster in a temporary directory, stopped and removed on drop.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// Run the cluster's programs as `postgres` (they refuse root).
    as_postgres: bool,
}

impl Cluster {
    /// `None` (with a line saying why) when no PostgreSQL binaries are installed.
    fn create() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").is_file())
            .max()?;
        let dir = tempfile::Builder::new()
            .prefix("trunkline-outage-")
            .tempdir()
            .expect("a temporary directory");
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the cluster directory to postgres");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self {
            bin,
            dir,
            port,
            as_postgres,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        cluster.start();
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).output().expect("run a PostgreSQL program");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
    }

    /// As a crash: no checkpoint, connections cut.
    fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let exe = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let _ = cmd.args(["-D", &data, "-m", "immediate", "stop"]).output();
    }
}

/// Every status a sender saw, by what it sent.
#[derive(Debug, Default, Clone)]
struct Seen(Arc<Mutex<BTreeMap<String, BTreeMap<String, usize>>>>);

impl Seen {
    fn add(&self, what: &str, status: u16, body: &str) {
        let code = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v["errorCode"].as_str().map(ToOwned::to_owned));
        let key = match code {
            Some(c) => format!("{status} {c}"),
            None => status.to_string(),
        };
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(what.to_owned())
            .or_default()
            .entry(key)
            .or_default() += 1;
    }

    fn snapshot(&self) -> BTreeMap<String, BTreeMap<String, usize>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Deliver `event` until an instance accepts it (as LiveKit retries a webhook that was not
/// answered 2xx), round the instances.
async fn deliver_until_accepted(
    lk: &LiveKitEmulator,
    targets: &[String],
    event: &Value,
    seen: &Seen,
) {
    let deadline = Instant::now() + Duration::from_secs(90);
    for attempt in 0.. {
        let target = &targets[attempt % targets.len()];
        let d = lk.send_webhook(target, event).await;
        let status = d.status.unwrap_or(0);
        seen.add("webhook", status, d.error.as_deref().unwrap_or_default());
        if d.succeeded() {
            return;
        }
        assert!(Instant::now() < deadline, "webhook never accepted: {d:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Send one onboarding request until it goes through; the final answer.
async fn until_done(
    client: &Client<'_>,
    path: &str,
    body: &Value,
    seen: &Seen,
    what: &str,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let Ok(r) = client.try_call(Method::POST, path, body).await else {
            // A pooled connection closed under the request: sent again, as a client does.
            seen.add(what, 0, "connection closed");
            assert!(Instant::now() < deadline, "{what} never went through");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        seen.add(what, r.status.as_u16(), &r.body.to_string());
        if r.status.is_success() {
            return r.body;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never went through: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn database_outage_under_load() {
    let Some(cluster) = Cluster::create() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI requires PostgreSQL's initdb and pg_ctl under /usr/lib/postgresql"
        );
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"skipping database_outage_under_load: no PostgreSQL under /usr/lib/postgresql\n",
        );
        return;
    };
    let twilio = emulator();
    let lk = livekit_emulator();
    let carrier = Carrier::new(&twilio, "Acme Inc", 4);
    // The backend is the test's own cluster: the shared server is never touched.
    let backend = Backend::Sqlite;
    let settings = Settings::new(&twilio, &backend)
        .with_livekit(&lk)
        .with("TRUNKLINE_DATABASE_URL", &cluster.url())
        .with("TRUNKLINE_DATABASE_TIMEOUT_MS", "500")
        .with("TRUNKLINE_LEASE_TTL_MS", "2000")
        .with(
            "TRUNKLINE_DISPATCH_CLAIM_TTL_SECS",
            &CLAIM_TTL.as_secs().to_string(),
        );
    let servers: Vec<TestServer> = join_all((0..2).map(|_| settings.start())).await;
    let transcript = Transcript::default();
    let acme_token = token("acme", &["customer"]);
    let clients: Vec<Client<'_>> = servers
        .iter()
        .map(|s| Client::new(s, acme_token.clone(), &transcript))
        .collect();
    clients[0].save(&carrier.key_body()).await.ok();
    let routing = json!({"agentName": "support-agent", "dispatchMode": "webhook"});
    // Number 0 takes the calls; 1..4 are connected and disconnected under load.
    let called = &carrier.numbers[0];
    clients[0]
        .connect(called, &json!({"routing": routing}))
        .await
        .ok();
    let e164 = twilio.number(called).unwrap().phone_number;
    let targets: Vec<String> = servers.iter().map(webhook_url).collect();
    let seen = Seen::default();

    // --- the load: calls every 50 ms, and connect/disconnect cycles of three numbers.
    let outage_over = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let calls_load = async {
        // Each call's webhooks are delivered (and retried) as soon as it is played, while
        // the next calls are played: deliveries run before, during and after the outage.
        let (tx, rx) = futures::channel::mpsc::unbounded::<Vec<Value>>();
        let play = async {
            let mut rooms = Vec::new();
            let mut i = 0;
            // Calls before, during and a while after the outage.
            let mut after = 0;
            while after < 10 {
                if outage_over.load(std::sync::atomic::Ordering::SeqCst) {
                    after += 1;
                }
                let played =
                    lk.inbound_call(&CallScript::new(&e164, format!("+1415555{:04}", 2000 + i)));
                i += 1;
                rooms.push(played.room.clone());
                tx.unbounded_send(played.events[..2].to_vec())
                    .expect("the deliveries run");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // The last call is played: the deliveries end once each is accepted.
            drop(tx);
            rooms
        };
        let deliver = rx.for_each_concurrent(None, |events| {
            let (lk, targets, seen) = (&lk, &targets, &seen);
            async move {
                for e in &events {
                    deliver_until_accepted(lk, targets, e, seen).await;
                }
            }
        });
        let (rooms, ()) = tokio::join!(play, deliver);
        rooms
    };
    let onboarding_load = join_all(carrier.numbers[1..].iter().enumerate().map(|(k, pn)| {
        let client = &clients[k % clients.len()];
        let seen = &seen;
        let outage_over = &outage_over;
        let routing = &routing;
        async move {
            let mut last = "disconnected";
            let mut cycles = 0;
            let mut after = 0;
            while after < 2 {
                if outage_over.load(std::sync::atomic::Ordering::SeqCst) {
                    after += 1;
                }
                let base = format!("/telephony/providers/twilio/numbers/{pn}");
                let c = until_done(
                    client,
                    &format!("{base}/connect"),
                    &json!({"routing": routing}),
                    seen,
                    "connect",
                )
                .await;
                assert_eq!(c["status"], "connected", "{c}");
                last = "connected";
                if cycles % 2 == 0 {
                    let d = until_done(
                        client,
                        &format!("{base}/disconnect"),
                        &json!({"restoreVoiceConfig": true}),
                        seen,
                        "disconnect",
                    )
                    .await;
                    assert_eq!(d["status"], "disconnected", "{d}");
                    last = "disconnected";
                }
                cycles += 1;
            }
            (pn.clone(), last, cycles)
        }
    }));
    let outage = async {
        let mut probes = Vec::new();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cluster.stop();
        let down = Instant::now();
        // --- while it is down.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for server in &servers {
            let r = server.get("/healthz", None).await.expect("healthz");
            assert_eq!(r.status(), 200);
            let r = server.get("/readyz", None).await.expect("readyz");
            assert_eq!(r.status(), 503);
            let client = Client::new(server, acme_token.clone(), &transcript);
            let r = client.numbers("").await;
            r.expect(503, Some("SERVICE_UNAVAILABLE"));
            let r = client
                .call(Method::GET, "/telephony/audit", &Value::Null)
                .await;
            r.expect(503, Some("SERVICE_UNAVAILABLE"));
            // The webhook: 503 with the code, so LiveKit delivers it again later.
            let played = lk.inbound_call(&CallScript::new(&e164, "+14155559999"));
            let body = played.events[1].to_string();
            let r = server
                .client()
                .post(webhook_url(server))
                .header("authorization", lk.sign_webhook(body.as_bytes()))
                .header("content-type", "application/webhook+json")
                .body(body)
                .send()
                .await
                .expect("the webhook answers");
            assert_eq!(r.status(), 503);
            let answer: Value = r.json().await.expect("a JSON error");
            assert_eq!(answer["errorCode"], "SERVICE_UNAVAILABLE", "{answer}");
            probes.push(played.room);
        }
        tokio::time::sleep(Duration::from_millis(2500)).await;
        cluster.start();
        let outage_for = down.elapsed();
        // --- back: both instances ready again, without a restart.
        for server in &servers {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let r = server.get("/readyz", None).await.expect("readyz");
                if r.status() == 200 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "not ready again after the outage"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        outage_over.store(true, std::sync::atomic::Ordering::SeqCst);
        (outage_for, probes)
    };
    let (rooms, cycles, (outage_for, probes)) = tokio::join!(calls_load, onboarding_load, outage);
    // A webhook refused during the outage and never delivered again dispatches nothing.
    for room in &probes {
        assert!(lk.dispatch_history(room).is_empty(), "{room}");
    }

    // --- every call dispatched exactly once. A dispatch made just as the database went away
    // cannot be recorded, and its claim outlives it: the record says `dispatched` once the
    // claim has run out (`CLAIM_TTL`) and the retrier finds the agent in the
    // room. LiveKit has the agent at once all the same.
    let mut late = Vec::new();
    for room in &rooms {
        wait_for(
            &format!("the agent dispatched to {room}"),
            SETTLE,
            || async { (!lk.dispatch_history(room).is_empty()).then_some(()) },
        )
        .await;
        let recorded = |c: &Value| c["dispatchStatus"] == "dispatched";
        let now = call_by_room(&clients[0], room).await;
        if !(now.status.as_u16() == 200 && recorded(&now.body)) {
            late.push(room.clone());
        }
    }
    for room in &rooms {
        let within = if late.contains(room) {
            CLAIM_TTL + SETTLE
        } else {
            SETTLE
        };
        let call = wait_for(
            &format!("{room} recorded as dispatched"),
            within,
            || async {
                let r = call_by_room(&clients[0], room).await;
                (r.status.as_u16() == 200 && r.body["dispatchStatus"] == "dispatched")
                    .then_some(r.body)
            },
        )
        .await;
        let history = lk.dispatch_history(room);
        assert_eq!(history.len(), 1, "{room}: {history:?}");
        assert_eq!(call["dispatchId"], history[0].id.as_str(), "{call}");
    }
    // The retriers leave them alone afterwards.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lk.total_dispatches(), rooms.len(), "duplicated dispatches");

    // --- every number as its last operation left it, on both sides, nothing half-written.
    for (pn, last, _) in &cycles {
        check_number(&twilio, &lk, &clients[1], pn, last).await;
    }
    check_number(&twilio, &lk, &clients[0], called, "connected").await;

    // --- what the senders saw: 503 with its code during the outage, never a 500.
    let seen = seen.snapshot();
    for (what, statuses) in &seen {
        for status in statuses.keys() {
            assert!(
                status == "200"
                    || status == "503 SERVICE_UNAVAILABLE"
                    // A pooled connection closed as it was reused (no answer): sent again.
                    || status == "0"
                    || status.starts_with("409")
                    // Webhook deliveries keep no body: their code is checked above.
                    || (what == "webhook" && status == "503"),
                "{what} answered {status}: {seen:?}"
            );
        }
    }
    let refused: usize = seen
        .values()
        .flat_map(|s| s.iter())
        .filter(|(k, _)| k.starts_with("503"))
        .map(|(_, n)| n)
        .sum();
    assert!(refused > 0, "the outage refused nothing: {seen:?}");
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "outage {outage_for:.1?} ({}): {} calls, {} dispatches, {} recorded only after the \
             claim ran out; cycles {:?}; answers {seen:?}\n",
            cluster.dir().display(),
            rooms.len(),
            lk.total_dispatches(),
            late.len(),
            cycles.iter().map(|c| c.2).collect::<Vec<_>>()
        )
        .as_bytes(),
    );
    drop(clients);
    drop(servers);
}

async fn check_number(
    twilio: &trunkline_testkit::twilio::TwilioEmulator,
    lk: &LiveKitEmulator,
    client: &Client<'_>,
    pn: &PhoneNumberSid,
    last: &str,
) {
    let s = client.status(pn, "").await;
    let s = s.ok().clone();
    assert_eq!(s["connection"]["status"], last, "{pn}: {s}");
    assert_eq!(s["drifts"], json!([]), "{pn}: {s}");
    let number = twilio.number(pn).unwrap();
    let holding = lk.trunks_for_number(&number.phone_number);
    if last == "connected" {
        assert!(number.trunk_sid.is_some(), "{pn}");
        assert_eq!(holding.len(), 1, "{pn}: {holding:?}");
        assert_eq!(
            s["connection"]["livekit"]["trunkId"].as_str(),
            Some(holding[0].sip_trunk_id.as_str())
        );
        assert_eq!(
            lk.rules_for_trunk(&holding[0].sip_trunk_id).len(),
            1,
            "{pn}"
        );
    } else {
        assert_eq!(number.trunk_sid, None, "{pn}");
        assert!(holding.is_empty(), "{pn}: {holding:?}");
    }
}
