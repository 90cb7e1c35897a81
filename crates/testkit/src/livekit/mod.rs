//! A stateful, in-memory emulator of the parts of LiveKit trunkline uses, over real HTTP.
//!
//! It serves LiveKit's server API the way LiveKit does: Twirp (`POST /twirp/livekit.<Service>/
//! <Method>`) with protobuf or JSON bodies, behind LiveKit's API-key middleware (a `Bearer`
//! HS256 token issued by a known key, checked signature, `nbf`/`exp` with a minute of
//! leeway, then per-method grants: `sip.admin` for trunks and rules, `video.roomAdmin` for
//! the request's room for agent dispatch).
//!
//! What it models (see the crate README for the choices made):
//! - Inbound trunks and dispatch rules with LiveKit's validation: the same called number on
//!   two trunks is refused unless `allowed_numbers` tells the callers apart; a second rule
//!   for the same trunk, caller, called number and PIN is refused (both `invalid_argument`,
//!   with LiveKit's messages); the list filters (trunk ids, numbers, rule ids) include
//!   "any" trunks and rules as LiveKit's do.
//! - Rooms and agent dispatches; a call matched by a rule with agents in its room
//!   configuration dispatches them by itself, as LiveKit does.
//! - Faults per method ([`Fault`]), a request log with per-method counts.
//! - Webhooks signed exactly as LiveKit signs them, and inbound calls played as the four
//!   webhooks LiveKit sends, with duplicates, reordering, concurrency and delay.
//!
//! The emulator runs its own actix system on a background thread, so it can be started from
//! plain `#[test]`s, `#[tokio::test]`s and binaries alike, and stops when dropped. Webhooks
//! are sent from the caller's tokio runtime.

mod faults;
mod invite;
mod outbound;
mod server;
mod state;
mod webhook;
pub use invite::InviteRefused;

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use chrono::Utc;
use rand::Rng;
use rand::seq::SliceRandom;

pub use faults::{Fault, Method, MethodSelector, RecordedRequest, Service};
pub use livekit_protocol as proto;
pub use outbound::{CallOutcome, OutboundCall};
pub use state::{TwirpError, normalize_number};
pub use webhook::{
    CallScript, PlayedCall, WEBHOOK_CONTENT_TYPE, WEBHOOK_TOKEN_TTL, WebhookDelivery,
    WebhookSigning, body_sha256, sign_webhook_token,
};

use server::{Shared, lock};
use state::{Store, new_id};

/// How to start the emulator.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Where to listen; port 0 picks a free port.
    pub addr: SocketAddr,
    /// actix workers.
    pub workers: usize,
    /// How long a [`Fault::Hang`] keeps a request unanswered.
    pub hang_for: Duration,
    /// The API key pair; `None` generates one.
    pub api_key: Option<(String, String)>,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 2,
            hang_for: Duration::from_secs(60),
            api_key: None,
        }
    }
}

/// A running emulator. Dropping it stops the listener.
pub struct LiveKitEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    api_key: String,
    api_secret: String,
    handle: ServerHandle,
    webhook_client: OnceLock<Result<reqwest::Client, String>>,
}

impl std::fmt::Debug for LiveKitEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKitEmulator")
            .field("addr", &self.addr)
            .field("api_key", &self.api_key)
            .finish_non_exhaustive()
    }
}

impl Drop for LiveKitEmulator {
    fn drop(&mut self) {
        // The stop command is sent when `stop` is called; nobody needs to wait for it.
        std::mem::drop(self.handle.stop(false));
    }
}

fn random_secret() -> String {
    let n: u128 = rand::rng().random();
    let m: u128 = rand::rng().random();
    format!("{n:032x}{m:032x}")
}

impl LiveKitEmulator {
    /// Start on a free port of 127.0.0.1 with a fresh API key pair.
    ///
    /// # Panics
    /// When the loopback interface cannot be bound (a broken test environment).
    pub fn start() -> Self {
        Self::start_with(EmulatorOptions::default())
            .unwrap_or_else(|e| panic!("cannot start the LiveKit emulator: {e}"))
    }

    pub fn start_with(options: EmulatorOptions) -> io::Result<Self> {
        // jsonwebtoken keeps one process-wide crypto provider; make it the full one, so a
        // test process that also checks RS256/EdDSA tokens keeps working.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        let listener = TcpListener::bind(options.addr)?;
        let addr = listener.local_addr()?;
        let (api_key, api_secret) = options
            .api_key
            .unwrap_or_else(|| (new_id("API"), random_secret()));
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            keys: Mutex::new(HashMap::from([(api_key.clone(), api_secret.clone())])),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            hang_for: options.hang_for,
            gates: crate::crashpoint::Gates::default(),
            concurrency: Arc::default(),
        });
        let (tx, rx) = mpsc::channel::<io::Result<ServerHandle>>();
        let for_thread = Arc::clone(&shared);
        let workers = options.workers;
        std::thread::Builder::new()
            .name("livekit-emulator".to_owned())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                system.block_on(async move {
                match server::build(for_thread, listener, workers) {
                    Ok(server) => {
                        // The receiver only goes away if `start_with` itself failed.
                        let _ = tx.send(Ok(server.handle()));
                        if let Err(e) = server.await {
                            tracing::warn!(error = %e, "livekit emulator stopped with an error");
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
            })?;
        let handle = rx
            .recv()
            .map_err(|_| io::Error::other("the emulator thread ended before starting"))??;
        Ok(Self {
            shared,
            addr,
            api_key,
            api_secret,
            handle,
            webhook_client: OnceLock::new(),
        })
    }

    /// The server API base (what `TRUNKLINE_LIVEKIT_URL` points at).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The emulator's throw-away secret.
    pub fn api_secret(&self) -> &str {
        &self.api_secret
    }

    /// Accept another key pair (LiveKit projects can have several).
    pub fn add_api_key(&self) -> (String, String) {
        let pair = (new_id("API"), random_secret());
        lock(&self.shared.keys).insert(pair.0.clone(), pair.1.clone());
        pair
    }

    /// Stop accepting a key: requests signed with it get LiveKit's 401 "invalid API key".
    pub fn revoke_api_key(&self, api_key: &str) -> bool {
        lock(&self.shared.keys).remove(api_key).is_some()
    }

    // --- inspection ---------------------------------------------------------------------

    /// Every inbound trunk, in creation order.
    pub fn trunks(&self) -> Vec<proto::SipInboundTrunkInfo> {
        lock(&self.shared.store).trunks.clone()
    }

    pub fn trunk(&self, id: &str) -> Option<proto::SipInboundTrunkInfo> {
        lock(&self.shared.store)
            .trunks
            .iter()
            .find(|t| t.sip_trunk_id == id)
            .cloned()
    }

    /// The trunks that accept exactly this number.
    pub fn trunks_for_number(&self, number: &str) -> Vec<proto::SipInboundTrunkInfo> {
        let want = normalize_number(number);
        lock(&self.shared.store)
            .trunks
            .iter()
            .filter(|t| t.numbers.iter().any(|n| normalize_number(n) == want))
            .cloned()
            .collect()
    }

    /// Every dispatch rule, in creation order.
    pub fn rules(&self) -> Vec<proto::SipDispatchRuleInfo> {
        lock(&self.shared.store).rules.clone()
    }

    pub fn rule(&self, id: &str) -> Option<proto::SipDispatchRuleInfo> {
        lock(&self.shared.store)
            .rules
            .iter()
            .find(|r| r.sip_dispatch_rule_id == id)
            .cloned()
    }

    /// The rules naming this trunk.
    pub fn rules_for_trunk(&self, trunk_id: &str) -> Vec<proto::SipDispatchRuleInfo> {
        lock(&self.shared.store)
            .rules
            .iter()
            .filter(|r| r.trunk_ids.iter().any(|t| t == trunk_id))
            .cloned()
            .collect()
    }

    /// The room's current agent dispatches.
    pub fn dispatches(&self, room: &str) -> Vec<proto::AgentDispatch> {
        lock(&self.shared.store)
            .rooms
            .get(room)
            .map(|r| r.dispatches.clone())
            .unwrap_or_default()
    }

    /// Every dispatch ever created in the room, deleted ones included.
    pub fn dispatch_history(&self, room: &str) -> Vec<proto::AgentDispatch> {
        lock(&self.shared.store)
            .rooms
            .get(room)
            .map(|r| r.history.clone())
            .unwrap_or_default()
    }

    /// Every dispatch ever created, in all rooms.
    pub fn total_dispatches(&self) -> usize {
        lock(&self.shared.store)
            .rooms
            .values()
            .map(|r| r.history.len())
            .sum()
    }

    /// Room names, sorted.
    pub fn rooms(&self) -> Vec<String> {
        lock(&self.shared.store).rooms.keys().cloned().collect()
    }

    // --- changes behind trunkline's back --------------------------------------------------

    /// Store a trunk as given (no validation), as another tool might have; returns its id.
    pub fn insert_trunk(&self, mut trunk: proto::SipInboundTrunkInfo) -> String {
        if trunk.sip_trunk_id.is_empty() {
            trunk.sip_trunk_id = new_id("ST_");
        }
        let id = trunk.sip_trunk_id.clone();
        lock(&self.shared.store).trunks.push(trunk);
        id
    }

    /// Delete a trunk directly. Returns whether it existed.
    pub fn remove_trunk(&self, id: &str) -> bool {
        let mut store = lock(&self.shared.store);
        let before = store.trunks.len();
        store.trunks.retain(|t| t.sip_trunk_id != id);
        store.trunks.len() != before
    }

    /// Store a rule as given (no validation); returns its id.
    pub fn insert_rule(&self, mut rule: proto::SipDispatchRuleInfo) -> String {
        if rule.sip_dispatch_rule_id.is_empty() {
            rule.sip_dispatch_rule_id = new_id("SDR_");
        }
        let id = rule.sip_dispatch_rule_id.clone();
        lock(&self.shared.store).rules.push(rule);
        id
    }

    /// Delete a rule directly. Returns whether it existed.
    pub fn remove_rule(&self, id: &str) -> bool {
        let mut store = lock(&self.shared.store);
        let before = store.rules.len();
        store.rules.retain(|r| r.sip_dispatch_rule_id != id);
        store.rules.len() != before
    }

    /// Make a room exist (open).
    pub fn open_room(&self, name: &str) {
        lock(&self.shared.store).room_mut(name).open = true;
    }

    /// End a room: ListDispatch then answers `not_found`, as LiveKit does for a room that is
    /// gone. Its dispatch history stays inspectable.
    pub fn close_room(&self, name: &str) {
        if let Some(r) = lock(&self.shared.store).rooms.get_mut(name) {
            r.open = false;
            r.dispatches.clear();
        }
    }

    // --- faults -------------------------------------------------------------------------

    /// Hold the `occurrence`-th request (from 0, counted from now) of `call` (a route's
    /// `Debug` name, e.g. `"CreateTrunk"`) before or after serving it, until the test lets it
    /// go: see [`crate::crashpoint`].
    pub fn crash_point(
        &self,
        call: &str,
        occurrence: usize,
        moment: crate::crashpoint::Moment,
    ) -> crate::crashpoint::CrashPoint {
        self.shared.gates.arm(call, occurrence, moment)
    }

    /// Inject a fault on the methods `selector` picks (a [`Method`], a [`Service`] or a
    /// [`MethodSelector`]).
    pub fn inject(&self, selector: impl Into<MethodSelector>, fault: Fault) {
        lock(&self.shared.faults).push(faults::ActiveFault::new(selector.into(), fault));
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Requests in flight now and the most at once since the start (or the last
    /// [`LiveKitEmulator::reset_requests`]).
    pub fn concurrency(&self) -> crate::ConcurrencyStats {
        self.shared.concurrency.stats()
    }

    // --- request log --------------------------------------------------------------------

    /// Every request since the start (or the last reset), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).clone()
    }

    /// How many requests `selector` picks, faulted and refused ones included.
    pub fn count(&self, selector: impl Into<MethodSelector>) -> usize {
        let selector = selector.into();
        lock(&self.shared.log)
            .iter()
            .filter(|r| selector.matches(r.method))
            .count()
    }

    /// Counts per method (methods with no requests are left out).
    pub fn counts(&self) -> Vec<(Method, usize)> {
        let log = lock(&self.shared.log);
        Method::ALL
            .into_iter()
            .map(|m| (m, log.iter().filter(|e| e.method == Some(m)).count()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    pub fn reset_requests(&self) {
        lock(&self.shared.log).clear();
        self.shared.concurrency.reset();
    }

    /// Forget trunks, rules, rooms, faults and the request log (keys stay).
    pub fn reset(&self) {
        *lock(&self.shared.store) = Store::default();
        self.clear_faults();
        self.reset_requests();
    }

    // --- webhooks -----------------------------------------------------------------------

    /// The `Authorization` value LiveKit would send with `body`, signed with this emulator's
    /// key and valid for five minutes.
    pub fn sign_webhook(&self, body: &[u8]) -> String {
        sign_webhook_token(body, &self.webhook_signing())
    }

    /// The signing parameters of [`Self::sign_webhook`], to vary for negative tests.
    pub fn webhook_signing(&self) -> WebhookSigning {
        WebhookSigning::new(&self.api_key, &self.api_secret)
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        self.webhook_client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .map_err(|e| format!("cannot build the webhook client: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// POST `body` to `target_url` with `authorization` (`None`: no header) as LiveKit
    /// posts webhooks.
    pub async fn send_raw_webhook(
        &self,
        target_url: &str,
        body: Vec<u8>,
        authorization: Option<String>,
    ) -> WebhookDelivery {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        let field = |k: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(k))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let mut delivery = WebhookDelivery {
            target: target_url.to_owned(),
            event_id: field("id"),
            event: field("event"),
            status: None,
            error: None,
        };
        let client = match self.client() {
            Ok(c) => c,
            Err(e) => {
                delivery.error = Some(e);
                return delivery;
            }
        };
        let mut request = client
            .post(target_url)
            .header(reqwest::header::CONTENT_TYPE, WEBHOOK_CONTENT_TYPE)
            .header(reqwest::header::USER_AGENT, "LiveKit")
            .body(body);
        if let Some(auth) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, auth);
        }
        match request.send().await {
            Ok(r) => delivery.status = Some(r.status().as_u16()),
            Err(e) => delivery.error = Some(e.to_string()),
        }
        delivery
    }

    /// Sign `event` as LiveKit does and POST it to `target_url`.
    pub async fn send_webhook(
        &self,
        target_url: &str,
        event: &serde_json::Value,
    ) -> WebhookDelivery {
        let body = event.to_string().into_bytes();
        let auth = self.sign_webhook(&body);
        self.send_raw_webhook(target_url, body, Some(auth)).await
    }

    /// The webhooks LiveKit sends for one inbound call, without sending them: `room_started`,
    /// `participant_joined` of the SIP participant, `participant_left`, `room_finished`,
    /// each with its own event id. Opens the room and, when the call matches a dispatch
    /// rule with agents in its room configuration, dispatches them as LiveKit would.
    pub fn inbound_call(&self, script: &CallScript) -> PlayedCall {
        let mut store = lock(&self.shared.store);
        let trunk = store
            .trunk_for(&script.called)
            .map(|t| t.sip_trunk_id.clone());
        let rule = store.rule_for(trunk.as_deref()).cloned();
        let room_name = script
            .room
            .clone()
            .unwrap_or_else(|| room_name_for(rule.as_ref(), &script.caller, &script.called));
        let (room_sid, created_at) = {
            let room = store.room_mut(&room_name);
            room.open = true;
            (room.sid.clone(), room.created_at)
        };
        if let Some(config) = rule.as_ref().and_then(|r| r.room_config.as_ref()) {
            for agent in &config.agents {
                store.add_dispatch(&room_name, &agent.agent_name, &agent.metadata);
            }
        }
        drop(store);

        let now = Utc::now().timestamp();
        let sip_call_id = new_id("SCL_");
        let identity = format!("sip_{}", script.caller);
        let room = proto::Room {
            sid: room_sid,
            name: room_name.clone(),
            empty_timeout: 300,
            departure_timeout: 20,
            creation_time: created_at,
            creation_time_ms: created_at * 1000,
            ..proto::Room::default()
        };
        let participant = |state: proto::participant_info::State, status: &str| {
            let mut attributes = HashMap::from([
                ("sip.callID".to_owned(), sip_call_id.clone()),
                ("sip.callStatus".to_owned(), status.to_owned()),
                ("sip.phoneNumber".to_owned(), script.caller.clone()),
                ("sip.trunkPhoneNumber".to_owned(), script.called.clone()),
            ]);
            if let Some(t) = &trunk {
                attributes.insert("sip.trunkID".to_owned(), t.clone());
            }
            proto::ParticipantInfo {
                sid: format!("PA_{}", &sip_call_id[4..]),
                identity: identity.clone(),
                name: format!("Phone {}", script.caller),
                state: state as i32,
                kind: proto::participant_info::Kind::Sip as i32,
                attributes,
                joined_at: now,
                joined_at_ms: now * 1000,
                ..proto::ParticipantInfo::default()
            }
        };
        let event = |name: &str, participant: Option<proto::ParticipantInfo>| proto::WebhookEvent {
            event: name.to_owned(),
            room: Some(room.clone()),
            participant,
            id: new_id("EV_"),
            created_at: now,
            ..proto::WebhookEvent::default()
        };
        let events = [
            event("room_started", None),
            event(
                "participant_joined",
                Some(participant(
                    proto::participant_info::State::Active,
                    "active",
                )),
            ),
            event(
                "participant_left",
                Some(participant(
                    proto::participant_info::State::Disconnected,
                    "hangup",
                )),
            ),
            event("room_finished", None),
        ];
        PlayedCall {
            room: room_name,
            trunk_id: trunk,
            sip_call_id,
            participant_identity: identity,
            events: events
                .iter()
                .map(|e| serde_json::to_value(e).unwrap_or_default())
                .collect(),
            deliveries: Vec::new(),
        }
    }

    // --- outbound -----------------------------------------------------------------------

    /// Outbound trunks as LiveKit holds them (passwords included, for tests to check).
    pub fn outbound_trunks(&self) -> Vec<proto::SipOutboundTrunkInfo> {
        lock(&self.shared.store).outbound_trunks.clone()
    }

    /// Store an outbound trunk as given (no validation), as another tool might have; returns
    /// its id.
    pub fn insert_outbound_trunk(&self, mut trunk: proto::SipOutboundTrunkInfo) -> String {
        if trunk.sip_trunk_id.is_empty() {
            trunk.sip_trunk_id = new_id("ST_");
        }
        let id = trunk.sip_trunk_id.clone();
        lock(&self.shared.store).outbound_trunks.push(trunk);
        id
    }

    /// Remove an outbound trunk behind trunkline's back (drift).
    pub fn remove_outbound_trunk(&self, id: &str) -> bool {
        let mut store = lock(&self.shared.store);
        let before = store.outbound_trunks.len();
        store.outbound_trunks.retain(|t| t.sip_trunk_id != id);
        store.outbound_trunks.len() != before
    }

    /// How calls to `to` (E.164) end from now on.
    pub fn script_destination(&self, to: &str, outcome: CallOutcome) {
        lock(&self.shared.store)
            .scripts
            .insert(normalize_number(to), outcome);
    }

    /// Every call `CreateSIPParticipant` placed, oldest first.
    pub fn outbound_calls(&self) -> Vec<OutboundCall> {
        lock(&self.shared.store).outbound_calls.clone()
    }

    /// Deliver the webhooks of the outbound call in `room` to `target_urls` (each event to
    /// the next URL in turn), signed as LiveKit signs them: `participant_joined` and
    /// `participant_left` of the callee when the call was answered, then `room_finished`.
    /// Empty when no call was placed in the room.
    pub async fn play_outbound_call(
        &self,
        target_urls: &[String],
        room: &str,
    ) -> Vec<WebhookDelivery> {
        let events = {
            let mut store = lock(&self.shared.store);
            let Some(call) = store
                .outbound_calls
                .iter()
                .rev()
                .find(|c| c.room == room)
                .cloned()
            else {
                return Vec::new();
            };
            let sid = store.room_mut(room).sid.clone();
            outbound::call_events(&call, &sid)
        };
        let mut deliveries = Vec::new();
        for (i, event) in events.iter().enumerate() {
            if target_urls.is_empty() {
                break;
            }
            let value = serde_json::to_value(event).unwrap_or_default();
            deliveries.push(
                self.send_webhook(&target_urls[i % target_urls.len()], &value)
                    .await,
            );
        }
        deliveries
    }

    /// Play an inbound call: deliver its webhooks (see [`Self::inbound_call`]) to
    /// `target_urls` as `script` says.
    pub async fn play_inbound_call(
        &self,
        target_urls: &[String],
        script: CallScript,
    ) -> PlayedCall {
        let mut call = self.inbound_call(&script);
        if target_urls.is_empty() {
            return call;
        }
        let copies = script.duplicates.max(1) as usize;
        let mut plan: Vec<(String, serde_json::Value)> = Vec::new();
        for (i, event) in call.events.iter().enumerate() {
            for k in 0..copies {
                plan.push((
                    target_urls[(i + k) % target_urls.len()].clone(),
                    event.clone(),
                ));
            }
        }
        if script.shuffle {
            plan.shuffle(&mut rand::rng());
        }
        if script.concurrent {
            let max_jitter = u64::try_from(script.delay.as_millis()).unwrap_or(u64::MAX);
            let sends = plan.into_iter().map(|(target, event)| {
                let jitter = if max_jitter == 0 {
                    0
                } else {
                    rand::rng().random_range(0..=max_jitter)
                };
                async move {
                    if jitter > 0 {
                        tokio::time::sleep(Duration::from_millis(jitter)).await;
                    }
                    self.send_webhook(&target, &event).await
                }
            });
            call.deliveries = futures::future::join_all(sends).await;
        } else {
            for (target, event) in plan {
                if !script.delay.is_zero() {
                    tokio::time::sleep(script.delay).await;
                }
                let delivery = self.send_webhook(&target, &event).await;
                call.deliveries.push(delivery);
            }
        }
        call
    }
}

/// The room LiveKit creates for a call (`livekit/protocol` `sip.go`, `EvaluateDispatchRule`):
/// individual rules `<prefix>_<caller>_<random>`, callee rules `<prefix>_<called>` (random
/// suffix when asked), direct rules their room; without a matching rule the emulator uses an
/// individual rule with the prefix `call-`.
fn room_name_for(rule: Option<&proto::SipDispatchRuleInfo>, from: &str, to: &str) -> String {
    use proto::sip_dispatch_rule::Rule;
    let join = |prefix: &str, who: &str| {
        if prefix.is_empty() {
            who.to_owned()
        } else {
            format!("{prefix}_{who}")
        }
    };
    match rule
        .and_then(|r| r.rule.as_ref())
        .and_then(|r| r.rule.as_ref())
    {
        Some(Rule::DispatchRuleIndividual(i)) => {
            let room = join(&i.room_prefix, from);
            if i.no_randomness {
                room
            } else {
                format!("{room}_{}", new_id(""))
            }
        }
        Some(Rule::DispatchRuleCallee(c)) => {
            let room = join(&c.room_prefix, to);
            if c.randomize {
                format!("{room}_{}", new_id(""))
            } else {
                room
            }
        }
        Some(Rule::DispatchRuleDirect(d)) => d.room_name.clone(),
        None => format!("{}_{}", join("call-", from), new_id("")),
    }
}
