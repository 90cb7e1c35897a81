//! Key rotation as an operation: secrets of every kind saved under an old key (carrier
//! credentials, an outbound route's SIP password, a voice-URL connection's webhook secret and
//! SIP password), a new active key, `trunkline vault rotate`, the old key removed, and every
//! secret still opens: the carrier is reached with the credentials, a reconnect reuses the
//! outbound and voice-URL passwords, a voice-URL call is verified and dialled with the right
//! password. Before the rotation, removing the old key loses the secrets it sealed: the
//! rotation is what makes the removal safe. On SQLite and on PostgreSQL.

#[macro_use]
mod support;

use std::process::Command;

use serde_json::json;
use trunkline_core::E164;
use trunkline_testkit::twilio::{Twiml, VoiceCallOptions};
use trunkline_twilio::VoiceConfig;

use support::livekit::{AGENT, livekit_emulator};
use support::{Backend, Carrier, Client, Settings, Transcript, action, emulator, token, vault_key};
use trunkline_e2e::trunkline_bin;

/// The URL Twilio reaches trunkline at, for the voice-URL connection.
const PUBLIC: &str = "https://voice.trunkline.e2e.test";
const VOICE_PATH: &str = "/telephony/providers/twilio/voice";

on_both_backends!(rotate_then_remove_the_old_key);

/// Run `trunkline vault <args>` with the servers' environment; (exit ok, stdout).
fn vault(settings: &Settings, data_dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(trunkline_bin().expect("the trunkline binary"));
    cmd.arg("vault").args(args).current_dir(data_dir);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("TRUNKLINE_") || k == "RUST_LOG" {
            cmd.env_remove(&key);
        }
    }
    cmd.env("TRUNKLINE_DATA_DIR", data_dir)
        .env(
            "TRUNKLINE_DATABASE_URL",
            format!("sqlite://{}", data_dir.join("trunkline.db").display()),
        )
        .env("TRUNKLINE_LOG_FORMAT", "json");
    for (k, v) in &settings.env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run trunkline vault");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn rotate_then_remove_the_old_key(backend: Backend) {
    let emu = emulator();
    let lk = livekit_emulator();
    let carriers: Vec<Carrier> = (0..4)
        .map(|i| Carrier::new(&emu, &format!("Customer {i}"), 1))
        .collect();
    let (old, new) = (vault_key(), vault_key());
    let data = tempfile::tempdir().expect("a data directory");
    let base = Settings::new(&emu, &backend)
        .with_livekit(&lk)
        .with("TRUNKLINE_PUBLIC_URL", PUBLIC);
    let with_keys = |keys: &str, active: &str| {
        base.clone()
            .with("TRUNKLINE_VAULT_KEYS", keys)
            .with("TRUNKLINE_VAULT_ACTIVE_KEY", active)
    };
    let only_old = with_keys(&format!("old:{old}"), "old");
    let both = with_keys(&format!("new:{new},old:{old}"), "new");
    let only_new = with_keys(&format!("new:{new}"), "new");
    let transcript = Transcript::default();
    let start = |s: &Settings| {
        let mut opts = trunkline_e2e::ServerOptions::default().data_dir(data.path());
        for (k, v) in &s.env {
            opts = opts.env(k, v);
        }
        trunkline_e2e::TestServer::start_with(opts)
    };

    // Three customers save under the old key.
    let server = start(&only_old).await.expect("start");
    for (i, c) in carriers[..3].iter().enumerate() {
        let client = Client::new(
            &server,
            token(&format!("cust{i}"), &["customer"]),
            &transcript,
        );
        client.save(&c.key_body()).await.ok();
    }
    // cust0 places calls: an outbound route's SIP password.
    let cust0 = Client::new(&server, token("cust0", &["customer"]), &transcript);
    let outbound = json!({"routing": {"agentName": AGENT}, "outbound": true});
    let c = cust0.connect(&carriers[0].numbers[0], &outbound).await;
    assert_eq!(action(c.ok(), "termination"), "created");
    // A trial account without SIP trunking connects by voice URL: a webhook secret and a SIP
    // password.
    let trial_account = emu.add_account_without_trunking("Trial Co");
    let trial_pn = emu.add_number(
        &trial_account.sid,
        &E164::parse("+14155550142").unwrap(),
        &VoiceConfig::default(),
    );
    let trial = Client::new(&server, token("trial", &["customer"]), &transcript);
    let saved = trial
        .save(&json!({
            "accountSid": trial_account.sid.as_str(),
            "authToken": trial_account.auth_token,
        }))
        .await;
    assert_eq!(saved.ok()["webhookSecretStored"], true);
    let c = trial
        .connect(
            &trial_pn,
            &json!({"mode": "auto", "routing": {"agentName": AGENT}}),
        )
        .await;
    assert_eq!(c.ok()["mode"], "voiceUrl");
    drop(server);
    let (ok, out) = vault(&only_old, data.path(), &["status"]);
    assert!(ok, "{out}");
    // Credentials 4, outbound password 1, webhook secret 1, voice-URL password 1.
    assert!(out.contains("  old: 7 (active)"), "{out}");

    // The new key becomes active; a fourth customer saves under it.
    let server = start(&both).await.expect("start");
    let client = Client::new(&server, token("cust3", &["customer"]), &transcript);
    client.save(&carriers[3].key_body()).await.ok();
    drop(server);
    let (ok, out) = vault(&both, data.path(), &["status"]);
    assert!(ok, "{out}");
    assert!(out.contains("  new: 1 (active)"), "{out}");
    assert!(out.contains("  old: 7\n"), "{out}");
    assert!(out.contains("7 secret(s) sealed with other keys"), "{out}");

    // Without the rotation, removing the old key loses what it sealed.
    let server = start(&only_new).await.expect("start");
    let lost = Client::new(&server, token("cust0", &["customer"]), &transcript)
        .numbers("")
        .await;
    assert_eq!(lost.status.as_u16(), 500, "{}", lost.body);
    drop(server);

    // Rotate, in pages of two; a second run finds nothing left to do.
    let (ok, out) = vault(&both, data.path(), &["rotate", "--batch", "2"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("examined 8, re-sealed 7, already on the active key 1, changed meanwhile (kept) 0, failed 0"),
        "{out}"
    );
    let (ok, out) = vault(&both, data.path(), &["rotate"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("examined 8, re-sealed 0, already on the active key 8"),
        "{out}"
    );
    let (ok, out) = vault(&only_new, data.path(), &["status"]);
    assert!(ok, "{out}");
    assert!(out.contains("  new: 8 (active)"), "{out}");
    assert!(out.contains("other keys can be removed"), "{out}");

    // The old key gone, every secret opens: each customer's numbers come from the carrier.
    let server = start(&only_new).await.expect("start");
    for (i, c) in carriers.iter().enumerate() {
        let client = Client::new(
            &server,
            token(&format!("cust{i}"), &["customer"]),
            &transcript,
        );
        let page = client.numbers("").await;
        assert_eq!(
            page.ok()["items"][0]["numberId"],
            c.numbers[0].as_str(),
            "cust{i}"
        );
    }
    // The outbound password opens: a reconnect keeps it (one that did not open is replaced).
    let cust0 = Client::new(&server, token("cust0", &["customer"]), &transcript);
    let c = cust0.connect(&carriers[0].numbers[0], &outbound).await;
    assert_eq!(action(c.ok(), "termination"), "reused");
    // The voice-URL secrets open: the credentials are reused, and a call is verified with the
    // webhook secret and dialled with the SIP password LiveKit holds.
    let trial = Client::new(&server, token("trial", &["customer"]), &transcript);
    let c = trial.connect(&trial_pn, &json!({})).await;
    assert_eq!(action(c.ok(), "sipCredentials"), "reused");
    let call = emu
        .place_voice_url_call(
            &trial_pn,
            &VoiceCallOptions {
                deliver_to: Some(server.url(VOICE_PATH)),
                ..VoiceCallOptions::default()
            },
        )
        .await;
    assert_eq!(call.status, Some(200), "{call:?}");
    let held = lk.trunks_for_number("+14155550142");
    assert_eq!(held.len(), 1, "{held:?}");
    match call.twiml.as_ref() {
        Some(Twiml::DialSip {
            password: Some(p), ..
        }) => assert_eq!(p, &held[0].auth_password),
        other => panic!("expected a SIP dial with credentials, got {other:?}"),
    }
    // Nothing secret in what the commands printed.
    for secret in [&old, &new] {
        assert!(!out.contains(secret.as_str()));
    }
    drop(server);
    drop(backend);
}
