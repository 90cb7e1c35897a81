//! The Telnyx half of the onboarding fixtures: the Telnyx emulator, servers configured
//! against it, an emulated account, and a client for `/telephony/providers/telnyx/…`.

use std::ops::Deref;

use reqwest::Method;
use serde_json::{Value, json};
use trunkline_testkit::telnyx::{
    ConnectionView, EmulatorOptions, SeededNumber, TelnyxEmulator, TestAccount,
};
use trunkline_testkit::twilio::TwilioEmulator;

use super::{Backend, Client, HANG_FOR, Reply, Settings};

pub const TELNYX: &str = "/telephony/providers/telnyx";

/// The Telnyx emulator, and a Twilio one only because the server is always configured for
/// Twilio too: no Telnyx test sends it anything.
pub struct Emulators {
    pub telnyx: TelnyxEmulator,
    twilio: TwilioEmulator,
}

impl Emulators {
    pub fn start() -> Self {
        let telnyx = TelnyxEmulator::start_with(EmulatorOptions {
            hang_for: HANG_FOR,
            workers: 2,
            ..EmulatorOptions::default()
        })
        .expect("the Telnyx emulator starts");
        Self {
            telnyx,
            twilio: super::emulator(),
        }
    }

    /// Server settings against the Telnyx emulator: a short retry budget so faults stay fast,
    /// and the same generous request timeout as Twilio's (see `Settings::new`).
    pub fn settings(&self, backend: &Backend) -> Settings {
        Settings::new(&self.twilio, backend)
            .with("TRUNKLINE_TELNYX_API_BASE", &self.telnyx.api_base())
            .with("TRUNKLINE_TELNYX_TIMEOUT_MS", "10000")
            .with("TRUNKLINE_TELNYX_RETRY_BUDGET_MS", "1500")
    }

    /// An account with `n` numbers on no connection.
    pub fn account(&self, name: &str, n: usize) -> Account {
        let account = self.telnyx.add_account(name);
        let numbers = self.telnyx.seed_numbers(&account.id, n);
        Account { account, numbers }
    }

    /// The FQDN connections of an account whose name marks them as trunkline's.
    pub fn our_connections(&self, account: &Account) -> Vec<ConnectionView> {
        self.telnyx
            .connections(&account.account.id)
            .into_iter()
            .filter(|c| c.connection_name.starts_with("trunkline"))
            .collect()
    }

    /// No request but reads reached Telnyx after the first `mark` requests.
    #[track_caller]
    pub fn only_reads_since(&self, mark: usize) {
        let writes: Vec<String> = self
            .telnyx
            .requests()
            .iter()
            .skip(mark)
            .filter(|r| r.method != "GET")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert!(writes.is_empty(), "unexpected writes at Telnyx: {writes:?}");
    }
}

/// An emulated Telnyx account, its full-permission key and its numbers.
#[derive(Debug, Clone)]
pub struct Account {
    pub account: TestAccount,
    pub numbers: Vec<SeededNumber>,
}

impl Account {
    pub fn key_body(&self) -> Value {
        key_body(&self.account.api_key)
    }

    pub fn id(&self, i: usize) -> &str {
        &self.numbers[i].id
    }

    pub fn e164(&self, i: usize) -> &str {
        &self.numbers[i].phone_number
    }
}

pub fn key_body(key: &str) -> Value {
    json!({ "apiKey": key })
}

/// A caller of the Telnyx routes of one server (and, through `Deref`, of the rest).
#[derive(Debug, Clone)]
pub struct Tx<'a>(pub Client<'a>);

impl<'a> Deref for Tx<'a> {
    type Target = Client<'a>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Tx<'_> {
    pub async fn verify(&self, body: &Value) -> Reply {
        self.0
            .call(Method::POST, &format!("{TELNYX}/credentials:verify"), body)
            .await
    }

    pub async fn save(&self, body: &Value) -> Reply {
        self.0
            .call(Method::POST, &format!("{TELNYX}/credentials"), body)
            .await
    }

    /// `query` is the raw query string, without `?`.
    pub async fn numbers(&self, query: &str) -> Reply {
        self.0
            .call(
                Method::GET,
                &format!("{TELNYX}/numbers?{query}"),
                &Value::Null,
            )
            .await
    }

    pub async fn connect(&self, number: &str, body: &Value) -> Reply {
        self.0
            .call(
                Method::POST,
                &format!("{TELNYX}/numbers/{number}/connect"),
                body,
            )
            .await
    }

    pub async fn disconnect(&self, number: &str, body: &Value) -> Reply {
        self.0
            .call(
                Method::POST,
                &format!("{TELNYX}/numbers/{number}/disconnect"),
                body,
            )
            .await
    }

    /// `query` is the raw query string, without `?` (e.g. `customerId=…` for support).
    pub async fn status(&self, number: &str, query: &str) -> Reply {
        self.0
            .call(
                Method::GET,
                &format!("{TELNYX}/numbers/{number}/status?{query}"),
                &Value::Null,
            )
            .await
    }
}
