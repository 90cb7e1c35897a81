//! A stateful, in-memory emulator of the parts of Twilio trunkline uses, over real HTTP.
//!
//! Two listeners on 127.0.0.1 stand in for Twilio's two hosts: [`TwilioEmulator::api_base`]
//! (`api.twilio.com`, the 2010 API: accounts and incoming phone numbers) and
//! [`TwilioEmulator::trunking_base`] (`trunking.twilio.com`, Trunking v1: trunks, origination
//! URLs, trunk phone numbers). Each serves only its own paths, as the real hosts do.
//!
//! What it models (see the crate README for the full list and the choices made):
//! - HTTP Basic auth with an account's auth token or an API key (`SK…` + secret). A
//!   Standard key cannot read `/Accounts/{sid}` (20003); a Restricted key may lack numbers or
//!   trunking permission (403, 70051); an account may lack Elastic SIP Trunking (403, 20403).
//! - Paging as Twilio does it: `PageSize` (1..=1000), `Page`, `PageToken`; 2010 lists carry
//!   `next_page_uri` & co., v1 lists a `meta` block with absolute URLs.
//! - Twilio's rules on numbers: a number sits on at most one trunk; attaching sets its
//!   `trunk_sid` and clears its `voice_application_sid`; setting a voice application clears
//!   the trunk; deleting a trunk releases its numbers and deletes its origination URLs.
//! - Faults per route ([`Fault`]) and a request log with per-route counts.
//!
//! The emulator runs its own actix system on a background thread, so it can be started
//! from plain `#[test]`s, `#[tokio::test]`s and binaries alike, and stops when dropped.

mod faults;
mod market;
mod routes;
pub(crate) mod server;
pub mod spec;
mod state;
mod termination;
mod voice_call;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use chrono::Utc;
use secrecy::SecretString;
use trunkline_core::E164;
use trunkline_core::model::CarrierCredentials;
use trunkline_twilio::{
    AccountSid, ApiKeySid, ApplicationSid, OriginationUrlSid, PhoneNumberSid, TrunkSid, VoiceConfig,
};

pub use faults::{Fault, RecordedRequest};
pub use routes::{Host, Params, Route, RouteSelector};
pub use state::{ApiError, KeyPermissions, codes};
pub use voice_call::{Twiml, VoiceCallOptions, VoiceCallOutcome, parse_twiml, twilio_signature};

use server::{Shared, lock};
use state::{Account, ApiKey, Number, OriginationUrl, Store, Trunk, new_secret, new_sid};

/// How to start the emulator.
#[derive(Debug, Clone, Copy)]
pub struct EmulatorOptions {
    /// Where the 2010 API listens; port 0 picks a free port.
    pub api_addr: SocketAddr,
    /// Where the Trunking v1 API listens; port 0 picks a free port.
    pub trunking_addr: SocketAddr,
    /// actix workers per listener.
    pub workers: usize,
    /// How long a [`Fault::Hang`] keeps a request unanswered.
    pub hang_for: Duration,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        Self {
            api_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            trunking_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 1,
            hang_for: Duration::from_secs(60),
        }
    }
}

/// A running emulator. Dropping it stops both listeners.
pub struct TwilioEmulator {
    shared: Arc<Shared>,
    api_addr: SocketAddr,
    trunking_addr: SocketAddr,
    handles: Vec<ServerHandle>,
}

impl std::fmt::Debug for TwilioEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioEmulator")
            .field("api_addr", &self.api_addr)
            .field("trunking_addr", &self.trunking_addr)
            .finish_non_exhaustive()
    }
}

impl Drop for TwilioEmulator {
    fn drop(&mut self) {
        for h in &self.handles {
            // The stop command is sent when `stop` is called; nobody needs to wait for it.
            std::mem::drop(h.stop(false));
        }
    }
}

/// An emulated account and its auth token.
#[derive(Debug, Clone)]
pub struct TestAccount {
    pub sid: AccountSid,
    pub friendly_name: String,
    pub auth_token: String,
}

impl TestAccount {
    /// Account SID + auth token credentials.
    pub fn auth_token_credentials(&self) -> CarrierCredentials {
        CarrierCredentials {
            account_id: Some(self.sid.clone().into()),
            key_id: None,
            secret: SecretString::from(self.auth_token.clone()),
        }
    }
}

/// An emulated API key and its secret.
#[derive(Debug, Clone)]
pub struct TestApiKey {
    pub account_sid: AccountSid,
    pub sid: ApiKeySid,
    pub secret: String,
    pub permissions: KeyPermissions,
}

impl TestApiKey {
    /// Account SID + API key credentials (seed 003's choice).
    pub fn credentials(&self) -> CarrierCredentials {
        CarrierCredentials {
            account_id: Some(self.account_sid.clone().into()),
            key_id: Some(self.sid.clone().into()),
            secret: SecretString::from(self.secret.clone()),
        }
    }
}

/// A number put into an account by the test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededNumber {
    pub sid: PhoneNumberSid,
    pub e164: E164,
}

/// A number as the emulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberView {
    pub sid: PhoneNumberSid,
    pub account_sid: AccountSid,
    pub phone_number: String,
    pub friendly_name: String,
    pub voice_capable: bool,
    pub trunk_sid: Option<TrunkSid>,
    pub voice: VoiceConfig,
}

/// A trunk as the emulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkView {
    pub sid: TrunkSid,
    pub account_sid: AccountSid,
    pub friendly_name: Option<String>,
    pub domain_name: Option<String>,
}

/// An origination URL as the emulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginationUrlView {
    pub sid: OriginationUrlSid,
    pub trunk_sid: TrunkSid,
    pub sip_url: String,
    pub friendly_name: String,
    pub priority: u16,
    pub weight: u16,
    pub enabled: bool,
}

impl TwilioEmulator {
    /// Start on two free ports of 127.0.0.1.
    ///
    /// # Panics
    /// When the loopback interface cannot be bound (a broken test environment).
    pub fn start() -> Self {
        Self::start_with(EmulatorOptions::default())
            .unwrap_or_else(|e| panic!("cannot start the Twilio emulator: {e}"))
    }

    pub fn start_with(options: EmulatorOptions) -> io::Result<Self> {
        let api_listener = TcpListener::bind(options.api_addr)?;
        let trunking_listener = TcpListener::bind(options.trunking_addr)?;
        let api_addr = api_listener.local_addr()?;
        let trunking_addr = trunking_listener.local_addr()?;
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            api_base: format!("http://{api_addr}"),
            trunking_base: format!("http://{trunking_addr}"),
            hang_for: options.hang_for,
            gates: crate::crashpoint::Gates::default(),
            concurrency: Arc::default(),
        });
        let (tx, rx) = mpsc::channel::<io::Result<Vec<ServerHandle>>>();
        let for_thread = Arc::clone(&shared);
        let workers = options.workers;
        std::thread::Builder::new()
            .name("twilio-emulator".to_owned())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                system.block_on(async move {
                    let api =
                        server::build(Arc::clone(&for_thread), Host::Api, api_listener, workers);
                    let trunking =
                        server::build(for_thread, Host::Trunking, trunking_listener, workers);
                    match (api, trunking) {
                        (Ok(api), Ok(trunking)) => {
                            // The receiver only goes away if `start_with` itself failed.
                            let _ = tx.send(Ok(vec![api.handle(), trunking.handle()]));
                            let (a, b) = tokio::join!(api, trunking);
                            if let Err(e) = a.and(b) {
                                tracing::warn!(error = %e, "twilio emulator stopped with an error");
                            }
                        }
                        (Err(e), _) | (_, Err(e)) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })?;
        let handles = rx
            .recv()
            .map_err(|_| io::Error::other("the emulator thread ended before starting"))??;
        Ok(Self {
            shared,
            api_addr,
            trunking_addr,
            handles,
        })
    }

    /// Base URL standing in for `https://api.twilio.com`.
    pub fn api_base(&self) -> String {
        self.shared.api_base.clone()
    }

    /// Base URL standing in for `https://trunking.twilio.com`.
    pub fn trunking_base(&self) -> String {
        self.shared.trunking_base.clone()
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    pub fn trunking_addr(&self) -> SocketAddr {
        self.trunking_addr
    }

    // --- seeding -----------------------------------------------------------------------------

    fn insert_account(&self, friendly_name: &str, trunking_enabled: bool) -> TestAccount {
        let sid = new_sid("AC");
        let auth_token = new_secret();
        lock(&self.shared.store).accounts.insert(
            sid.clone(),
            Account {
                sid: sid.clone(),
                friendly_name: friendly_name.to_owned(),
                auth_token: auth_token.clone(),
                trunking_enabled,
                created: Utc::now(),
            },
        );
        TestAccount {
            sid: parse_sid(&sid, AccountSid::parse),
            friendly_name: friendly_name.to_owned(),
            auth_token,
        }
    }

    /// An account with Elastic SIP Trunking.
    pub fn add_account(&self, friendly_name: &str) -> TestAccount {
        self.insert_account(friendly_name, true)
    }

    /// An account whose trunking endpoints answer 403 with code 20403.
    pub fn add_account_without_trunking(&self, friendly_name: &str) -> TestAccount {
        self.insert_account(friendly_name, false)
    }

    /// Turn Elastic SIP Trunking on or off for an account.
    pub fn set_trunking_enabled(&self, account: &AccountSid, enabled: bool) {
        if let Some(a) = lock(&self.shared.store).accounts.get_mut(account.as_str()) {
            a.trunking_enabled = enabled;
        }
    }

    /// A Standard key, or (with `trunking_allowed = false`) a Restricted key that may use
    /// numbers but not trunking.
    pub fn add_api_key(&self, account: &AccountSid, trunking_allowed: bool) -> TestApiKey {
        self.add_api_key_with(
            account,
            KeyPermissions {
                trunking: trunking_allowed,
                ..KeyPermissions::default()
            },
        )
    }

    pub fn add_api_key_with(
        &self,
        account: &AccountSid,
        permissions: KeyPermissions,
    ) -> TestApiKey {
        let sid = new_sid("SK");
        let secret = new_secret();
        lock(&self.shared.store).keys.insert(
            sid.clone(),
            ApiKey {
                account_sid: account.as_str().to_owned(),
                secret: secret.clone(),
                perms: permissions,
            },
        );
        TestApiKey {
            account_sid: account.clone(),
            sid: parse_sid(&sid, ApiKeySid::parse),
            secret,
            permissions,
        }
    }

    /// Revoke a key: requests with it then fail with 20003.
    pub fn remove_api_key(&self, key: &ApiKeySid) {
        lock(&self.shared.store).keys.remove(key.as_str());
    }

    /// Add `n` voice-capable numbers with distinct, valid E.164 numbers
    /// (`+1 415 55x xxxx` and other Bay Area codes) and no voice configuration.
    pub fn seed_numbers(&self, account: &AccountSid, n: usize) -> Vec<SeededNumber> {
        let mut store = lock(&self.shared.store);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let e164 = Store::seeded_e164(store.next_phone);
            store.next_phone += 1;
            let sid = insert_number(&mut store, account, &e164, &VoiceConfig::default());
            if let Ok(e164) = E164::parse(&e164) {
                out.push(SeededNumber {
                    sid: parse_sid(&sid, PhoneNumberSid::parse),
                    e164,
                });
            }
        }
        out
    }

    /// Add one number with the given voice configuration.
    pub fn add_number(
        &self,
        account: &AccountSid,
        e164: &E164,
        voice: &VoiceConfig,
    ) -> PhoneNumberSid {
        let sid = insert_number(&mut lock(&self.shared.store), account, e164.as_str(), voice);
        parse_sid(&sid, PhoneNumberSid::parse)
    }

    /// Put a number up for sale: `kind` is `Local`, `TollFree` or `Mobile`.
    pub fn add_for_sale(&self, country: &str, kind: &'static str, e164: &E164) {
        lock(&self.shared.store).for_sale.insert(
            e164.as_str().to_owned(),
            market::ForSale {
                e164: e164.as_str().to_owned(),
                country: country.to_owned(),
                kind,
                region: "CA".to_owned(),
                locality: "San Francisco".to_owned(),
            },
        );
    }

    /// Whether a number is still for sale.
    pub fn is_for_sale(&self, e164: &E164) -> bool {
        lock(&self.shared.store)
            .for_sale
            .contains_key(e164.as_str())
    }

    /// Remove a number from its account (released behind trunkline's back).
    pub fn remove_number(&self, number: &PhoneNumberSid) -> bool {
        lock(&self.shared.store)
            .numbers
            .remove(number.as_str())
            .is_some()
    }

    /// Create a trunk directly, as the customer (or another tool) would.
    pub fn add_trunk(&self, account: &AccountSid, friendly_name: Option<&str>) -> TrunkSid {
        let sid = new_sid("TK");
        let now = Utc::now();
        lock(&self.shared.store).trunks.insert(
            sid.clone(),
            Trunk {
                sid: sid.clone(),
                account_sid: account.as_str().to_owned(),
                friendly_name: friendly_name.map(str::to_owned),
                domain_name: None,
                disaster_recovery_url: None,
                disaster_recovery_method: None,
                transfer_mode: "disable-all".to_owned(),
                transfer_caller_id: "from-transferee".to_owned(),
                secure: false,
                cnam_lookup_enabled: false,
                created: now,
                updated: now,
            },
        );
        parse_sid(&sid, TrunkSid::parse)
    }

    /// Delete a trunk behind trunkline's back (numbers released, origination URLs gone).
    pub fn remove_trunk(&self, trunk: &TrunkSid) -> bool {
        lock(&self.shared.store).remove_trunk(trunk.as_str())
    }

    /// Take a number off its trunk behind trunkline's back. `false` when it does not exist.
    pub fn detach_number(&self, number: &PhoneNumberSid) -> bool {
        let mut store = lock(&self.shared.store);
        match store.numbers.get_mut(number.as_str()) {
            Some(n) => {
                n.trunk_sid = None;
                n.updated = Utc::now();
                true
            }
            None => false,
        }
    }

    /// Put a number on a trunk directly, with Twilio's side effect (voice application
    /// cleared). Returns `false` when either does not exist.
    pub fn attach_number(&self, trunk: &TrunkSid, number: &PhoneNumberSid) -> bool {
        let mut store = lock(&self.shared.store);
        if !store.trunks.contains_key(trunk.as_str()) {
            return false;
        }
        match store.numbers.get_mut(number.as_str()) {
            Some(n) => {
                n.trunk_sid = Some(trunk.as_str().to_owned());
                n.voice_application_sid = None;
                n.updated = Utc::now();
                true
            }
            None => false,
        }
    }

    /// Create an origination URL directly.
    pub fn add_origination_url(
        &self,
        trunk: &TrunkSid,
        sip_url: &str,
        priority: u16,
        weight: u16,
    ) -> Option<OriginationUrlSid> {
        let mut store = lock(&self.shared.store);
        let account_sid = store.trunks.get(trunk.as_str())?.account_sid.clone();
        let sid = new_sid("OU");
        let now = Utc::now();
        store.origination_urls.insert(
            sid.clone(),
            OriginationUrl {
                sid: sid.clone(),
                account_sid,
                trunk_sid: trunk.as_str().to_owned(),
                sip_url: sip_url.to_owned(),
                friendly_name: "added by test".to_owned(),
                priority,
                weight,
                enabled: true,
                created: now,
                updated: now,
            },
        );
        OriginationUrlSid::parse(&sid).ok()
    }

    // --- inspection -------------------------------------------------------------------------

    pub fn number(&self, number: &PhoneNumberSid) -> Option<NumberView> {
        lock(&self.shared.store)
            .numbers
            .get(number.as_str())
            .and_then(number_view)
    }

    /// Every number of an account, in SID order.
    pub fn numbers(&self, account: &AccountSid) -> Vec<NumberView> {
        lock(&self.shared.store)
            .numbers
            .values()
            .filter(|n| n.account_sid == account.as_str())
            .filter_map(number_view)
            .collect()
    }

    pub fn trunks(&self, account: &AccountSid) -> Vec<TrunkView> {
        lock(&self.shared.store)
            .trunks
            .values()
            .filter(|t| t.account_sid == account.as_str())
            .filter_map(trunk_view)
            .collect()
    }

    pub fn trunk(&self, trunk: &TrunkSid) -> Option<TrunkView> {
        lock(&self.shared.store)
            .trunks
            .get(trunk.as_str())
            .and_then(trunk_view)
    }

    pub fn origination_urls(&self, trunk: &TrunkSid) -> Vec<OriginationUrlView> {
        lock(&self.shared.store)
            .origination_urls
            .values()
            .filter(|o| o.trunk_sid == trunk.as_str())
            .filter_map(|o| {
                Some(OriginationUrlView {
                    sid: OriginationUrlSid::parse(&o.sid).ok()?,
                    trunk_sid: TrunkSid::parse(&o.trunk_sid).ok()?,
                    sip_url: o.sip_url.clone(),
                    friendly_name: o.friendly_name.clone(),
                    priority: o.priority,
                    weight: o.weight,
                    enabled: o.enabled,
                })
            })
            .collect()
    }

    /// The numbers on a trunk, in SID order.
    /// The account's SIP credential lists: (sid, friendly name).
    pub fn credential_lists(&self, account: &AccountSid) -> Vec<(String, String)> {
        lock(&self.shared.store)
            .credential_lists
            .values()
            .filter(|l| l.account_sid == account.as_str())
            .map(|l| (l.sid.clone(), l.friendly_name.clone()))
            .collect()
    }

    /// A credential list's credentials: (username, password), as Twilio stores them.
    pub fn sip_credentials(&self, list: &str) -> Vec<(String, String)> {
        lock(&self.shared.store)
            .credentials
            .values()
            .filter(|c| c.list_sid == list)
            .map(|c| (c.username.clone(), c.password.clone()))
            .collect()
    }

    /// The credential lists a trunk authenticates outbound calls with.
    pub fn trunk_credential_lists(&self, trunk: &TrunkSid) -> Vec<String> {
        lock(&self.shared.store)
            .trunk_credential_lists
            .iter()
            .filter(|(t, _)| t == trunk.as_str())
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Detach a credential list from a trunk behind trunkline's back (drift).
    pub fn detach_credential_list(&self, trunk: &TrunkSid, list: &str) -> bool {
        lock(&self.shared.store)
            .trunk_credential_lists
            .remove(&(trunk.as_str().to_owned(), list.to_owned()))
    }

    pub fn trunk_numbers(&self, trunk: &TrunkSid) -> Vec<PhoneNumberSid> {
        lock(&self.shared.store)
            .numbers
            .values()
            .filter(|n| n.trunk_sid.as_deref() == Some(trunk.as_str()))
            .filter_map(|n| PhoneNumberSid::parse(&n.sid).ok())
            .collect()
    }

    // --- faults ------------------------------------------------------------------------------

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

    /// Inject a fault on the routes `selector` picks (a [`Route`], a [`Host`] or
    /// [`RouteSelector::Any`]).
    pub fn inject(&self, selector: impl Into<RouteSelector>, fault: Fault) {
        lock(&self.shared.faults).push(faults::ActiveFault::new(selector.into(), fault));
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Refuse requests beyond `limit` in flight at once with 429 and code 20429, as Twilio
    /// enforces an account's concurrency limit (100 by default); `None` lifts it. One
    /// limit for the whole emulator: the tests that use it have one account.
    pub fn set_concurrency_limit(&self, limit: Option<usize>) {
        self.shared.concurrency.set_limit(limit);
    }

    /// Requests in flight now, the most at once since the start (or the last
    /// [`TwilioEmulator::reset_requests`]), and how many the limit refused.
    pub fn concurrency(&self) -> crate::ConcurrencyStats {
        self.shared.concurrency.stats()
    }

    // --- request log -------------------------------------------------------------------------

    /// Every request since the start (or the last reset), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).clone()
    }

    /// How many requests `selector` picks, faulted ones included.
    pub fn count(&self, selector: impl Into<RouteSelector>) -> usize {
        let selector = selector.into();
        lock(&self.shared.log)
            .iter()
            .filter(|r| selector.matches(r.host, r.route))
            .count()
    }

    /// Counts per route (routes with no requests are left out), for benchmarks and reports.
    pub fn counts(&self) -> Vec<(Route, usize)> {
        let log = lock(&self.shared.log);
        Route::ALL
            .into_iter()
            .map(|r| (r, log.iter().filter(|e| e.route == Some(r)).count()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    pub fn reset_requests(&self) {
        lock(&self.shared.log).clear();
        self.shared.concurrency.reset();
    }

    /// Forget everything: accounts, keys, numbers, trunks, faults and the request log.
    pub fn reset(&self) {
        *lock(&self.shared.store) = Store::default();
        self.clear_faults();
        self.reset_requests();
    }
}

/// SIDs the emulator generates always parse; this only guards the conversion.
fn parse_sid<T>(
    raw: &str,
    parse: impl Fn(&str) -> Result<T, trunkline_core::ValidationError>,
) -> T {
    parse(raw).unwrap_or_else(|e| panic!("emulator generated an invalid SID {raw}: {e}"))
}

fn insert_number(
    store: &mut Store,
    account: &AccountSid,
    e164: &str,
    voice: &VoiceConfig,
) -> String {
    let sid = new_sid("PN");
    let now = Utc::now();
    store.numbers.insert(
        sid.clone(),
        Number {
            sid: sid.clone(),
            account_sid: account.as_str().to_owned(),
            phone_number: e164.to_owned(),
            friendly_name: state::default_friendly_name(e164),
            voice_capable: true,
            voice_url: voice.voice_url.clone(),
            voice_method: voice
                .voice_method
                .clone()
                .unwrap_or_else(|| "POST".to_owned()),
            voice_fallback_url: voice.voice_fallback_url.clone(),
            voice_fallback_method: voice
                .voice_fallback_method
                .clone()
                .unwrap_or_else(|| "POST".to_owned()),
            voice_application_sid: voice
                .voice_application_sid
                .as_ref()
                .map(|a| a.as_str().to_owned()),
            status_callback: voice.status_callback.clone(),
            status_callback_method: "POST".to_owned(),
            voice_caller_id_lookup: false,
            trunk_sid: None,
            created: now,
            updated: now,
        },
    );
    sid
}

fn number_view(n: &Number) -> Option<NumberView> {
    Some(NumberView {
        sid: PhoneNumberSid::parse(&n.sid).ok()?,
        account_sid: AccountSid::parse(&n.account_sid).ok()?,
        phone_number: n.phone_number.clone(),
        friendly_name: n.friendly_name.clone(),
        voice_capable: n.voice_capable,
        trunk_sid: n.trunk_sid.as_deref().and_then(|t| TrunkSid::parse(t).ok()),
        voice: VoiceConfig {
            voice_url: n.voice_url.clone(),
            voice_method: Some(n.voice_method.clone()),
            voice_fallback_url: n.voice_fallback_url.clone(),
            voice_fallback_method: Some(n.voice_fallback_method.clone()),
            voice_application_sid: n
                .voice_application_sid
                .as_deref()
                .and_then(|a| ApplicationSid::parse(a).ok()),
            status_callback: n.status_callback.clone(),
        },
    })
}

fn trunk_view(t: &Trunk) -> Option<TrunkView> {
    Some(TrunkView {
        sid: TrunkSid::parse(&t.sid).ok()?,
        account_sid: AccountSid::parse(&t.account_sid).ok()?,
        friendly_name: t.friendly_name.clone(),
        domain_name: t.domain_name.clone(),
    })
}
