//! A stateful, in-memory emulator of the parts of Telnyx API v2 trunkline uses, over real HTTP.
//!
//! One listener on 127.0.0.1 stands in for `https://api.telnyx.com/v2`:
//! [`TelnyxEmulator::api_base`] ends in `/v2`, and paths are Telnyx's (`/balance`,
//! `/phone_numbers`, `/fqdn_connections`, `/fqdns`).
//!
//! What it models (see the crate README for the full list and the choices made):
//! - Bearer API keys. An unknown or missing key is 401 with code 10009; a key without
//!   number permissions gets 403 with code 10010 on `/phone_numbers` (and may still read the
//!   balance and connections).
//! - Paging as Telnyx does it: `page[number]` (from 1) and `page[size]` (1..=250, larger is a
//!   400 with code 10015 naming the parameter), `meta: {page_number, page_size, total_pages,
//!   total_results}`; newest first.
//! - Telnyx's rules on numbers: a number has one `connection_id`; PATCHing it moves the
//!   number silently; `""` or `null` detaches it. `connection_name` follows the connection.
//! - FQDN connections with Telnyx's defaults (UDP, `E.164-national`, `e164`), the inbound
//!   primary/secondary/tertiary FQDN ids (only FQDNs of the same connection), and FQDNs
//!   (`a` or `srv`, port default 5060). Deleting an FQDN clears it from its connection's
//!   failover slots; deleting a connection that numbers still use is refused (422).
//! - Outbound: a connection's `fqdn_authentication` (credential authentication; passwords
//!   shown masked only) and outbound voice profiles assigned through
//!   `outbound.outbound_voice_profile_id` (see `outbound.rs`).
//! - Faults per route ([`Fault`]) and a request log with per-route counts.
//!
//! The emulator runs its own actix system on a background thread, so it can be started
//! from plain `#[test]`s, `#[tokio::test]`s and binaries alike, and stops when dropped.

mod faults;
mod market;
mod outbound;
mod routes;
mod server;
pub mod spec;
mod state;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use chrono::Utc;

pub use faults::{Fault, RATE_LIMIT, RecordedRequest};
pub use outbound::MASKED_PASSWORD;
pub use routes::{Route, RouteSelector};
pub use state::{ApiError, MAX_PAGE_SIZE, codes};

use crate::twilio::server::lock;
use server::Shared;
use state::{Account, ApiKey, Connection, Fqdn, Number, Store, new_api_key};

/// How to start the emulator.
#[derive(Debug, Clone, Copy)]
pub struct EmulatorOptions {
    /// Where to listen; port 0 picks a free port.
    pub addr: SocketAddr,
    /// actix workers.
    pub workers: usize,
    /// How long a [`Fault::Hang`] keeps a request unanswered.
    pub hang_for: Duration,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 1,
            hang_for: Duration::from_secs(60),
        }
    }
}

/// A running emulator. Dropping it stops the listener.
pub struct TelnyxEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    handle: ServerHandle,
}

impl std::fmt::Debug for TelnyxEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelnyxEmulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for TelnyxEmulator {
    fn drop(&mut self) {
        // The stop command is sent when `stop` is called; nobody needs to wait for it.
        std::mem::drop(self.handle.stop(false));
    }
}

/// An emulated account (a Telnyx user) and its first API key, which may use everything.
#[derive(Debug, Clone)]
pub struct TestAccount {
    pub id: String,
    pub name: String,
    pub api_key: String,
}

/// An API key the test made.
#[derive(Debug, Clone)]
pub struct TestApiKey {
    pub account: String,
    pub key: String,
    pub numbers_allowed: bool,
}

/// A number put into an account by the test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededNumber {
    /// Telnyx's numeric id.
    pub id: String,
    /// E.164 with `+`.
    pub phone_number: String,
}

/// A number as the emulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberView {
    pub id: String,
    pub account: String,
    pub phone_number: String,
    pub connection_id: Option<String>,
}

/// An FQDN connection as the emulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionView {
    pub id: String,
    pub account: String,
    pub connection_name: String,
    pub active: bool,
    pub transport_protocol: String,
    pub ani_number_format: String,
    pub dnis_number_format: String,
    /// `default_primary_fqdn_id`, `…secondary…`, `…tertiary…`, in order.
    pub failover: [Option<String>; 3],
    pub routing_method: String,
    /// `outbound.outbound_voice_profile_id`.
    pub outbound_voice_profile_id: Option<String>,
}

/// How a connection authenticates outbound calls, as the emulator holds it. The password is
/// here for tests to compare with what LiveKit was given; the HTTP side never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboundAuthView {
    pub connection_id: String,
    /// `fqdn_outbound_authentication`.
    pub method: String,
    pub user_name: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for OutboundAuthView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundAuthView")
            .field("connection_id", &self.connection_id)
            .field("method", &self.method)
            .field("user_name", &self.user_name)
            .field("password", &self.password.as_ref().map(|_| MASKED_PASSWORD))
            .finish()
    }
}

/// An outbound voice profile as the emulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceProfileView {
    pub id: String,
    pub account: String,
    pub name: String,
    pub enabled: bool,
    pub whitelisted_destinations: Vec<String>,
    /// The connections whose `outbound_voice_profile_id` it is, in id order.
    pub connections: Vec<String>,
}

/// An FQDN as the emulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FqdnView {
    pub id: String,
    pub connection_id: String,
    pub fqdn: String,
    pub port: u16,
    pub dns_record_type: String,
}

impl TelnyxEmulator {
    /// Start on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// When the loopback interface cannot be bound (a broken test environment).
    pub fn start() -> Self {
        Self::start_with(EmulatorOptions::default())
            .unwrap_or_else(|e| panic!("cannot start the Telnyx emulator: {e}"))
    }

    pub fn start_with(options: EmulatorOptions) -> io::Result<Self> {
        let listener = TcpListener::bind(options.addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            hang_for: options.hang_for,
            gates: crate::crashpoint::Gates::default(),
        });
        let (tx, rx) = mpsc::channel::<io::Result<ServerHandle>>();
        let for_thread = Arc::clone(&shared);
        let workers = options.workers;
        std::thread::Builder::new()
            .name("telnyx-emulator".to_owned())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                system.block_on(async move {
                    match server::build(for_thread, listener, workers) {
                        Ok(server) => {
                            // The receiver only goes away if `start_with` itself failed.
                            let _ = tx.send(Ok(server.handle()));
                            if let Err(e) = server.await {
                                tracing::warn!(error = %e, "telnyx emulator stopped with an error");
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
            handle,
        })
    }

    /// Base URL standing in for `https://api.telnyx.com/v2`.
    pub fn api_base(&self) -> String {
        format!("http://{}{}", self.addr, routes::PREFIX)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    // --- seeding -----------------------------------------------------------------------------

    /// An account with a balance and one key that may use everything.
    pub fn add_account(&self, name: &str) -> TestAccount {
        let id = uuid::Uuid::new_v4().to_string();
        lock(&self.shared.store).accounts.insert(
            id.clone(),
            Account {
                balance: "300.00".to_owned(),
                credit_limit: "100.00".to_owned(),
            },
        );
        let key = self.add_api_key(&id, true);
        TestAccount {
            id,
            name: name.to_owned(),
            api_key: key.key,
        }
    }

    /// Another key of an account; `numbers_allowed = false` makes a key that gets 403 (10010)
    /// on phone numbers.
    pub fn add_api_key(&self, account: &str, numbers_allowed: bool) -> TestApiKey {
        let key = new_api_key();
        lock(&self.shared.store).keys.insert(
            key.clone(),
            ApiKey {
                account: account.to_owned(),
                numbers_allowed,
            },
        );
        TestApiKey {
            account: account.to_owned(),
            key,
            numbers_allowed,
        }
    }

    /// Revoke a key: requests with it then fail with 10009.
    pub fn remove_api_key(&self, key: &str) {
        lock(&self.shared.store).keys.remove(key);
    }

    /// Add `n` numbers with distinct E.164 numbers (`+1 312 555 xxxx` and other Chicago
    /// codes) on no connection.
    pub fn seed_numbers(&self, account: &str, n: usize) -> Vec<SeededNumber> {
        let mut store = lock(&self.shared.store);
        (0..n)
            .map(|_| {
                let phone_number = Store::seeded_e164(store.next_phone);
                store.next_phone += 1;
                let id = insert_number(&mut store, account, &phone_number, None);
                SeededNumber { id, phone_number }
            })
            .collect()
    }

    /// Add one number, optionally on a connection (which must exist).
    pub fn add_number(
        &self,
        account: &str,
        phone_number: &str,
        connection_id: Option<&str>,
    ) -> String {
        let mut store = lock(&self.shared.store);
        let connection = connection_id.and_then(|c| c.parse().ok());
        insert_number(&mut store, account, phone_number, connection)
    }

    /// Put a number up for sale; `kind` is `local`, `toll_free` or `mobile`.
    pub fn add_for_sale(&self, country: &str, kind: &str, phone_number: &str) {
        lock(&self.shared.store).for_sale.insert(
            phone_number.to_owned(),
            market::ForSale {
                country: country.to_owned(),
                kind: kind.to_owned(),
            },
        );
    }

    /// How many reads of a pending number order it takes to complete (0: complete at once).
    pub fn set_order_polls(&self, polls: u32) {
        lock(&self.shared.store).order_polls = polls;
    }

    /// Remove a number from its account (released behind trunkline's back).
    pub fn remove_number(&self, id: &str) -> bool {
        id.parse()
            .is_ok_and(|id| lock(&self.shared.store).numbers.remove(&id).is_some())
    }

    /// Create an FQDN connection directly, as the customer (or another tool) would, with
    /// Telnyx's defaults. Returns its id.
    pub fn add_connection(&self, account: &str, name: &str) -> String {
        let mut store = lock(&self.shared.store);
        let id = store.next_id();
        store.connections.insert(id, Connection::new(account, name));
        id.to_string()
    }

    /// An account whose `n` numbers all sit on a connection someone else made (named
    /// `"Acme PBX"`, nothing like trunkline's): the case where connecting must not move a
    /// number without `force`. Returns the account, the connection's id and the numbers.
    pub fn add_account_on_foreign_connection(
        &self,
        name: &str,
        n: usize,
    ) -> (TestAccount, String, Vec<SeededNumber>) {
        let account = self.add_account(name);
        let connection = self.add_connection(&account.id, "Acme PBX");
        self.add_fqdn(&connection, "pbx.acme.example", 5060, "a");
        let numbers = self.seed_numbers(&account.id, n);
        for number in &numbers {
            self.set_number_connection(&number.id, Some(&connection));
        }
        (account, connection, numbers)
    }

    /// Delete a connection behind trunkline's back: its FQDNs go, its numbers are detached.
    pub fn remove_connection(&self, id: &str) -> bool {
        id.parse()
            .is_ok_and(|id| lock(&self.shared.store).remove_connection(id))
    }

    /// Add an FQDN to a connection directly. `None` when the connection does not exist.
    pub fn add_fqdn(
        &self,
        connection_id: &str,
        fqdn: &str,
        port: u16,
        dns_record_type: &str,
    ) -> Option<String> {
        let mut store = lock(&self.shared.store);
        let connection: u64 = connection_id.parse().ok()?;
        let account = store.connections.get(&connection)?.account.clone();
        let id = store.next_id();
        let now = Utc::now();
        store.fqdns.insert(
            id,
            Fqdn {
                account,
                connection_id: connection,
                fqdn: fqdn.to_owned(),
                port,
                dns_record_type: dns_record_type.to_owned(),
                created: now,
                updated: now,
            },
        );
        Some(id.to_string())
    }

    /// Move a number to a connection (or off any), as the customer would in the portal.
    /// `false` when the number (or the connection) does not exist.
    pub fn set_number_connection(&self, number: &str, connection: Option<&str>) -> bool {
        let mut store = lock(&self.shared.store);
        let connection = match connection {
            Some(c) => match c.parse::<u64>() {
                Ok(c) if store.connections.contains_key(&c) => Some(c),
                _ => return false,
            },
            None => None,
        };
        match number
            .parse::<u64>()
            .ok()
            .and_then(|n| store.numbers.get_mut(&n))
        {
            Some(n) => {
                n.connection_id = connection;
                n.updated = Utc::now();
                true
            }
            None => false,
        }
    }

    // --- inspection -------------------------------------------------------------------------

    pub fn number(&self, id: &str) -> Option<NumberView> {
        let id: u64 = id.parse().ok()?;
        lock(&self.shared.store)
            .numbers
            .get(&id)
            .map(|n| number_view(id, n))
    }

    /// Every number of an account, in id order.
    pub fn numbers(&self, account: &str) -> Vec<NumberView> {
        lock(&self.shared.store)
            .numbers
            .iter()
            .filter(|(_, n)| n.account == account)
            .map(|(id, n)| number_view(*id, n))
            .collect()
    }

    /// Every FQDN connection of an account, in id order.
    pub fn connections(&self, account: &str) -> Vec<ConnectionView> {
        lock(&self.shared.store)
            .connections
            .iter()
            .filter(|(_, c)| c.account == account)
            .map(|(id, c)| connection_view(*id, c))
            .collect()
    }

    pub fn connection(&self, id: &str) -> Option<ConnectionView> {
        let id: u64 = id.parse().ok()?;
        lock(&self.shared.store)
            .connections
            .get(&id)
            .map(|c| connection_view(id, c))
    }

    /// The FQDNs of a connection, in id order.
    pub fn fqdns(&self, connection_id: &str) -> Vec<FqdnView> {
        let Ok(connection) = connection_id.parse::<u64>() else {
            return Vec::new();
        };
        lock(&self.shared.store)
            .fqdns
            .iter()
            .filter(|(_, f)| f.connection_id == connection)
            .map(|(id, f)| FqdnView {
                id: id.to_string(),
                connection_id: f.connection_id.to_string(),
                fqdn: f.fqdn.clone(),
                port: f.port,
                dns_record_type: f.dns_record_type.clone(),
            })
            .collect()
    }

    /// The ids of the numbers on a connection, in id order.
    pub fn connection_numbers(&self, connection_id: &str) -> Vec<String> {
        let Ok(connection) = connection_id.parse::<u64>() else {
            return Vec::new();
        };
        lock(&self.shared.store)
            .numbers
            .iter()
            .filter(|(_, n)| n.connection_id == Some(connection))
            .map(|(id, _)| id.to_string())
            .collect()
    }

    /// How a connection authenticates outbound calls; `None` when it does not exist.
    pub fn outbound_auth(&self, connection_id: &str) -> Option<OutboundAuthView> {
        let id: u64 = connection_id.parse().ok()?;
        lock(&self.shared.store)
            .connections
            .get(&id)
            .map(|c| OutboundAuthView {
                connection_id: id.to_string(),
                method: c.outbound_auth.clone(),
                user_name: c.user_name.clone(),
                password: c.password.clone(),
            })
    }

    /// Every outbound voice profile of an account, in id order.
    pub fn voice_profiles(&self, account: &str) -> Vec<VoiceProfileView> {
        let store = lock(&self.shared.store);
        store
            .voice_profiles
            .iter()
            .filter(|(_, p)| p.account == account)
            .map(|(id, p)| VoiceProfileView {
                id: id.to_string(),
                account: p.account.clone(),
                name: p.name.clone(),
                enabled: p.enabled,
                whitelisted_destinations: p.destinations.clone(),
                connections: store
                    .connections
                    .iter()
                    .filter(|(_, c)| c.voice_profile == Some(*id))
                    .map(|(c, _)| c.to_string())
                    .collect(),
            })
            .collect()
    }

    /// Switch a connection's outbound authentication back to `ip-authentication` behind
    /// trunkline's back (drift). `false` when the connection does not exist.
    pub fn drop_outbound_credentials(&self, connection_id: &str) -> bool {
        let Ok(id) = connection_id.parse::<u64>() else {
            return false;
        };
        match lock(&self.shared.store).connections.get_mut(&id) {
            Some(c) => {
                "ip-authentication".clone_into(&mut c.outbound_auth);
                true
            }
            None => false,
        }
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

    /// Inject a fault on the routes `selector` picks (a [`Route`] or [`RouteSelector::Any`]).
    pub fn inject(&self, selector: impl Into<RouteSelector>, fault: Fault) {
        lock(&self.shared.faults).push(faults::ActiveFault::new(selector.into(), fault));
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
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
            .filter(|r| selector.matches(r.route))
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
    }

    /// Forget everything: accounts, keys, numbers, connections, FQDNs, faults and the log.
    pub fn reset(&self) {
        *lock(&self.shared.store) = Store::default();
        self.clear_faults();
        self.reset_requests();
    }
}

fn insert_number(
    store: &mut Store,
    account: &str,
    phone_number: &str,
    connection_id: Option<u64>,
) -> String {
    let id = store.next_id();
    let now = Utc::now();
    store.numbers.insert(
        id,
        Number {
            account: account.to_owned(),
            phone_number: phone_number.to_owned(),
            connection_id,
            customer_reference: None,
            tags: Vec::new(),
            created: now,
            updated: now,
        },
    );
    id.to_string()
}

fn number_view(id: u64, n: &Number) -> NumberView {
    NumberView {
        id: id.to_string(),
        account: n.account.clone(),
        phone_number: n.phone_number.clone(),
        connection_id: n.connection_id.map(|c| c.to_string()),
    }
}

fn connection_view(id: u64, c: &Connection) -> ConnectionView {
    let s = |f: Option<u64>| f.map(|f| f.to_string());
    ConnectionView {
        id: id.to_string(),
        account: c.account.clone(),
        connection_name: c.name.clone(),
        active: c.active,
        transport_protocol: c.transport_protocol.clone(),
        ani_number_format: c.ani_number_format.clone(),
        dnis_number_format: c.dnis_number_format.clone(),
        failover: [s(c.primary_fqdn), s(c.secondary_fqdn), s(c.tertiary_fqdn)],
        routing_method: c.routing_method.clone(),
        outbound_voice_profile_id: c.voice_profile.map(|p| p.to_string()),
    }
}
