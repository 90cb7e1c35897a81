//! Key rotation as an operation: secrets saved under an old key, a new active key, `trunkline
//! vault rotate`, the old key removed, and every secret still opens (the carrier is reached
//! with it). Before the rotation, removing the old key loses the secrets it sealed: the
//! rotation is what makes the removal safe. On SQLite and on PostgreSQL.

#[macro_use]
mod support;

use std::process::Command;

use support::{Backend, Carrier, Client, Settings, Transcript, emulator, token, vault_key};
use trunkline_e2e::trunkline_bin;

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
    let carriers: Vec<Carrier> = (0..4)
        .map(|i| Carrier::new(&emu, &format!("Customer {i}"), 1))
        .collect();
    let (old, new) = (vault_key(), vault_key());
    let data = tempfile::tempdir().expect("a data directory");
    let base = Settings::new(&emu, &backend);
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
    drop(server);
    let (ok, out) = vault(&only_old, data.path(), &["status"]);
    assert!(ok, "{out}");
    assert!(out.contains("  old: 3 (active)"), "{out}");

    // The new key becomes active; a fourth customer saves under it.
    let server = start(&both).await.expect("start");
    let client = Client::new(&server, token("cust3", &["customer"]), &transcript);
    client.save(&carriers[3].key_body()).await.ok();
    drop(server);
    let (ok, out) = vault(&both, data.path(), &["status"]);
    assert!(ok, "{out}");
    assert!(out.contains("  new: 1 (active)"), "{out}");
    assert!(out.contains("  old: 3\n"), "{out}");
    assert!(out.contains("3 secret(s) sealed with other keys"), "{out}");

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
        out.contains("examined 4, re-sealed 3, already on the active key 1, changed meanwhile (kept) 0, failed 0"),
        "{out}"
    );
    let (ok, out) = vault(&both, data.path(), &["rotate"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("examined 4, re-sealed 0, already on the active key 4"),
        "{out}"
    );
    let (ok, out) = vault(&only_new, data.path(), &["status"]);
    assert!(ok, "{out}");
    assert!(out.contains("  new: 4 (active)"), "{out}");
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
    // Nothing secret in what the commands printed.
    for secret in [&old, &new] {
        assert!(!out.contains(secret.as_str()));
    }
    drop(server);
    drop(backend);
}
