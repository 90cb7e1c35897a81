//! The real binary's start-up failures: one line on stderr, the right exit code.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_trunkline");

/// The binary in `dir`, with no TRUNKLINE_* from outside and its database under `dir/db`.
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TRUNKLINE_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env(
        "TRUNKLINE_DATABASE_URL",
        format!("sqlite://{}/db/t.db", dir.display()),
    );
    cmd
}

/// Run the binary with `vars` in a fresh temporary directory.
fn run(args: &[&str], vars: &[(&str, &str)]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path(), args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    (cmd.output().unwrap(), dir)
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(ToOwned::to_owned)
        .collect()
}

#[test]
fn bad_listen_address_exits_2_with_one_line_naming_the_variable() {
    let (out, _dir) = run(&["serve"], &[("TRUNKLINE_LISTEN", "not-an-address")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("TRUNKLINE_LISTEN"), "{lines:?}");
    assert!(!lines[0].contains("panicked"), "{lines:?}");
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn default_command_is_serve_and_validates_too() {
    let (out, _dir) = run(&[], &[("TRUNKLINE_MAX_BODY_BYTES", "lots")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("TRUNKLINE_MAX_BODY_BYTES"), "{lines:?}");
}

#[test]
fn secrets_are_not_echoed_on_bad_values() {
    let (out, _dir) = run(
        &["serve"],
        &[(
            "TRUNKLINE_DATABASE_URL",
            "postgres://user:hunter2-secret@/nohost",
        )],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TRUNKLINE_DATABASE_URL"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn production_without_keys_names_every_missing_variable() {
    let (out, dir) = run(&["serve"], &[("TRUNKLINE_ENV", "production")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    for var in [
        "TRUNKLINE_VAULT_KEYS",
        "TRUNKLINE_VAULT_ACTIVE_KEY",
        "TRUNKLINE_AUTH_PUBLIC_KEYS",
        "TRUNKLINE_AUTH_ISSUER",
        "TRUNKLINE_AUTH_AUDIENCE",
    ] {
        assert!(lines[0].contains(var), "{var} missing from {lines:?}");
    }
    // Refused before any fallback ran: no development key files were written.
    assert!(!dir.path().join("db").exists(), "production created files");
}

#[test]
fn production_names_only_what_is_missing() {
    let (out, _dir) = run(
        &["serve"],
        &[
            ("TRUNKLINE_ENV", "production"),
            (
                "TRUNKLINE_VAULT_KEYS",
                "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
            ("TRUNKLINE_VAULT_ACTIVE_KEY", "k1"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TRUNKLINE_AUTH_PUBLIC_KEYS"), "{err}");
    assert!(!err.contains("TRUNKLINE_VAULT_KEYS"), "{err}");
    assert!(!err.contains("AAAAAAAA"), "{err}");
}

#[test]
fn dev_token_refuses_in_production() {
    let (out, _dir) = run(&["dev-token"], &[("TRUNKLINE_ENV", "production")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("production"), "{lines:?}");
}

#[test]
fn dev_token_prints_one_token_and_reuses_the_key() {
    let (out, dir) = run(
        &["dev-token", "--customer", "acme", "--role", "support"],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap();
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let key = dir.path().join("db").join("dev-auth-ed25519.pem");
    let before = std::fs::read(&key).unwrap();

    // Same data dir (same database URL) → same key file, untouched.
    let out2 = command(dir.path(), &["dev-token"]).output().unwrap();
    assert!(out2.status.success(), "{out2:?}");
    assert_eq!(std::fs::read(&key).unwrap(), before);
}

#[test]
fn dev_token_rejects_a_bad_customer() {
    let (out, _dir) = run(&["dev-token", "--customer", "has space"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--customer"));
}

#[test]
fn migrate_applies_once_then_reports_up_to_date() {
    let (out, dir) = run(&["migrate"], &[]);
    assert!(out.status.success(), "{out:?}");
    let first = String::from_utf8(out.stdout).unwrap();
    assert!(first.contains("applied "), "{first}");
    assert!(dir.path().join("db").join("t.db").is_file());

    let again = command(dir.path(), &["migrate"]).output().unwrap();
    assert!(again.status.success(), "{again:?}");
    let second = String::from_utf8(again.stdout).unwrap();
    assert!(second.contains("up to date"), "{second}");
    assert!(!second.contains("applied "), "{second}");
}

#[test]
fn unreachable_database_exits_2_naming_the_variable() {
    // Nothing listens on port 1: the connection is refused at once.
    let (out, _dir) = run(
        &["serve"],
        &[(
            "TRUNKLINE_DATABASE_URL",
            "postgres://user:hunter2-secret@127.0.0.1:1/trunkline",
        )],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let lines = stderr_lines(&out);
    let last = lines.last().expect("a line on stderr");
    assert!(last.starts_with("trunkline: "), "{lines:?}");
    assert!(last.contains("TRUNKLINE_DATABASE_URL"), "{lines:?}");
    assert!(!last.contains("hunter2"), "{lines:?}");
}

#[cfg(unix)]
#[test]
fn data_dir_and_files_are_private_whichever_command_creates_them() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // `dev-token` first, as the quickstart does, then a command that opens the database.
    for args in [&["dev-token"][..], &["migrate"][..]] {
        let out = command(dir.path(), args)
            .env("TRUNKLINE_DATABASE_URL", "sqlite://./data/trunkline.db")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
    }
    assert_eq!(mode(&data), 0o700, "data directory");
    let mut files = 0;
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    assert!(data.join("trunkline.db").exists());
    assert!(files >= 2, "{files} files");
}
