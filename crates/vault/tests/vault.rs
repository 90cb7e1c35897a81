//! The vault through its public API, with real AES-256-GCM and real files.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use secrecy::{ExposeSecret as _, SecretString};
use trunkline_core::model::{SealContext, SealedSecret};
use trunkline_core::ports::{CredentialVault, VaultError};
use trunkline_core::{CustomerId, IntegrationId, ProviderKind};
use trunkline_vault::{AesGcmVault, KeyRing, KeyRingError};

const SECRET: &str = "twilio-auth-token-0123456789abcdef";

fn key() -> String {
    KeyRing::generate_key()
        .expect("OS randomness")
        .expose_secret()
        .to_owned()
}

fn ring(entries: &[(&str, &str)], active: &str) -> KeyRing {
    let config = entries
        .iter()
        .map(|(kid, key)| format!("{kid}:{key}"))
        .collect::<Vec<_>>()
        .join(",");
    KeyRing::from_config(&SecretString::from(config), active).unwrap()
}

fn vault(entries: &[(&str, &str)], active: &str) -> AesGcmVault {
    AesGcmVault::new(ring(entries, active))
}

fn ctx() -> SealContext {
    SealContext {
        customer_id: CustomerId::parse("cust_1").unwrap(),
        integration_id: IntegrationId::new(),
        provider: ProviderKind::Twilio,
    }
}

fn secret() -> SecretString {
    SecretString::from(SECRET)
}

/// Bytes before the nonce for a value sealed with `kid`.
fn header_len(kid: &str) -> usize {
    2 + kid.len()
}

#[tokio::test]
async fn round_trip() {
    let v = vault(&[("k1", &key())], "k1");
    let c = ctx();
    for plaintext in [SECRET, "", "ü-ñ-🔑", &"x".repeat(10_000)] {
        let sealed = v.seal(&SecretString::from(plaintext), &c).await.unwrap();
        assert_eq!(sealed.0.len(), 30 + "k1".len() + plaintext.len());
        assert!(
            !sealed
                .0
                .windows(plaintext.len().max(1))
                .any(|w| w == plaintext.as_bytes()),
            "plaintext must not appear in the sealed bytes"
        );
        let opened = v.open(&sealed, &c).await.unwrap();
        assert_eq!(opened.expose_secret(), plaintext);
    }
}

#[tokio::test]
async fn sealed_value_starts_with_version_and_key_id() {
    let v = vault(&[("key_2024-01", &key())], "key_2024-01");
    let sealed = v.seal(&secret(), &ctx()).await.unwrap();
    assert_eq!(sealed.0[0], 0x01);
    assert_eq!(usize::from(sealed.0[1]), "key_2024-01".len());
    assert_eq!(&sealed.0[2..2 + "key_2024-01".len()], b"key_2024-01");
}

#[tokio::test]
async fn two_seals_of_one_secret_differ() {
    let v = vault(&[("k1", &key())], "k1");
    let c = ctx();
    let a = v.seal(&secret(), &c).await.unwrap();
    let b = v.seal(&secret(), &c).await.unwrap();
    assert_ne!(a, b);
    let nonce = |s: &SealedSecret| s.0[header_len("k1")..header_len("k1") + 12].to_vec();
    assert_ne!(nonce(&a), nonce(&b), "each seal needs a fresh nonce");
    assert_eq!(v.open(&a, &c).await.unwrap().expose_secret(), SECRET);
    assert_eq!(v.open(&b, &c).await.unwrap().expose_secret(), SECRET);
}

#[tokio::test]
async fn wrong_context_fails_for_each_field() {
    let v = vault(&[("k1", &key())], "k1");
    let c = ctx();
    let sealed = v.seal(&secret(), &c).await.unwrap();

    let other_customer = SealContext {
        customer_id: CustomerId::parse("cust_2").unwrap(),
        ..c.clone()
    };
    let other_integration = SealContext {
        integration_id: IntegrationId::new(),
        ..c.clone()
    };
    for wrong in [other_customer, other_integration] {
        assert_eq!(
            v.open(&sealed, &wrong).await.unwrap_err(),
            VaultError::Decrypt
        );
    }

    // The provider, the third field, has a single `ProviderKind` value today; its binding is
    // tested by hand in `src/vault.rs` (`provider_is_bound_into_the_associated_data`).
    assert_eq!(v.open(&sealed, &c).await.unwrap().expose_secret(), SECRET);
}

#[tokio::test]
async fn customer_and_key_id_boundaries_are_unambiguous() {
    // Same key bytes under ids "c" and "bc": with a plain concatenation of key id and
    // customer, ("ab","c") and ("a","bc") would authenticate the same bytes.
    let k = key();
    let v = vault(&[("c", &k), ("bc", &k)], "c");
    let c = SealContext {
        customer_id: CustomerId::parse("ab").unwrap(),
        ..ctx()
    };
    let mut sealed = v.seal(&secret(), &c).await.unwrap();
    // Rewrite the stored key id from "c" to "bc" (one byte longer).
    let mut rewritten = vec![0x01, 2, b'b', b'c'];
    rewritten.extend_from_slice(&sealed.0[header_len("c")..]);
    sealed.0 = rewritten;
    let shifted = SealContext {
        customer_id: CustomerId::parse("a").unwrap(),
        ..c
    };
    assert_eq!(
        v.open(&sealed, &shifted).await.unwrap_err(),
        VaultError::Decrypt
    );
}

#[tokio::test]
async fn wrong_key_with_the_same_id_fails() {
    let c = ctx();
    let sealed = vault(&[("k1", &key())], "k1")
        .seal(&secret(), &c)
        .await
        .unwrap();
    let other = vault(&[("k1", &key())], "k1");
    assert_eq!(
        other.open(&sealed, &c).await.unwrap_err(),
        VaultError::Decrypt
    );
}

#[tokio::test]
async fn unknown_key_id_fails() {
    let c = ctx();
    let sealed = vault(&[("k1", &key())], "k1")
        .seal(&secret(), &c)
        .await
        .unwrap();
    let other = vault(&[("k2", &key())], "k2");
    assert_eq!(
        other.open(&sealed, &c).await.unwrap_err(),
        VaultError::UnknownKey("k1".into())
    );
}

#[tokio::test]
async fn stored_key_id_is_authenticated() {
    // Both keys in the ring: pointing a value at the other key must not open it, even if
    // the key bytes were the same.
    let k = key();
    let v = vault(&[("k1", &k), ("k2", &k)], "k1");
    let c = ctx();
    let mut sealed = v.seal(&secret(), &c).await.unwrap();
    sealed.0[3] = b'2';
    assert_eq!(v.open(&sealed, &c).await.unwrap_err(), VaultError::Decrypt);
}

#[tokio::test]
async fn any_flipped_bit_fails_cleanly() {
    let v = vault(&[("k1", &key())], "k1");
    let c = ctx();
    let sealed = v.seal(&secret(), &c).await.unwrap();
    let kid_end = header_len("k1");
    for i in 0..sealed.0.len() {
        for mask in [0x01u8, 0x80] {
            let mut bad = sealed.clone();
            bad.0[i] ^= mask;
            let err = v.open(&bad, &c).await.unwrap_err();
            match i {
                0 => assert_eq!(
                    err,
                    VaultError::Malformed("unsupported format version"),
                    "version byte"
                ),
                // A different length re-slices the key id: either it is no valid id, or a
                // valid one the ring does not have.
                1 => assert!(
                    matches!(err, VaultError::Malformed(_) | VaultError::UnknownKey(_)),
                    "kid_len byte: {err:?}"
                ),
                i if i < kid_end => assert!(
                    matches!(err, VaultError::Malformed("invalid key id"))
                        || matches!(&err, VaultError::UnknownKey(k) if k != "k1"),
                    "kid byte {i}: {err:?}"
                ),
                // Nonce, ciphertext and tag.
                _ => assert_eq!(err, VaultError::Decrypt, "byte {i}"),
            }
        }
    }
    assert_eq!(v.open(&sealed, &c).await.unwrap().expose_secret(), SECRET);
}

#[tokio::test]
async fn truncated_values_fail_cleanly() {
    let v = vault(&[("k1", &key())], "k1");
    let c = ctx();
    let sealed = v.seal(&secret(), &c).await.unwrap();
    let min_len = header_len("k1") + 12 + 16;
    for len in 0..sealed.0.len() {
        let cut = SealedSecret(sealed.0[..len].to_vec());
        let err = v.open(&cut, &c).await.unwrap_err();
        if len < min_len {
            assert!(
                matches!(err, VaultError::Malformed(_)),
                "len {len}: {err:?}"
            );
        } else {
            assert_eq!(err, VaultError::Decrypt, "len {len}");
        }
    }
    let mut longer = sealed.clone();
    longer.0.push(0);
    assert_eq!(v.open(&longer, &c).await.unwrap_err(), VaultError::Decrypt);
}

#[tokio::test]
async fn rotation_keeps_old_values_open_and_reseals_them() {
    let k1 = key();
    let c = ctx();
    let before = vault(&[("k1", &k1)], "k1");
    let old = before.seal(&secret(), &c).await.unwrap();
    assert!(!before.needs_reseal(&old));

    let after = vault(&[("k1", &k1), ("k2", &key())], "k2");
    assert_eq!(after.open(&old, &c).await.unwrap().expose_secret(), SECRET);
    assert!(after.needs_reseal(&old));

    let new = after.reseal(&old, &c).await.unwrap();
    assert_eq!(&new.0[2..4], b"k2");
    assert!(!after.needs_reseal(&new));
    assert_eq!(after.open(&new, &c).await.unwrap().expose_secret(), SECRET);

    // Once k1 is retired only the re-sealed value opens.
    let retired = vault(&[("k2", &key())], "k2");
    assert_eq!(
        retired.open(&old, &c).await.unwrap_err(),
        VaultError::UnknownKey("k1".into())
    );
    // A reseal with the wrong context fails instead of re-binding the secret.
    let other = SealContext {
        integration_id: IntegrationId::new(),
        ..c
    };
    assert_eq!(
        after.reseal(&old, &other).await.unwrap_err(),
        VaultError::Decrypt
    );
}

#[test]
fn needs_reseal_flags_values_that_do_not_parse() {
    let v = vault(&[("k1", &key())], "k1");
    assert!(v.needs_reseal(&SealedSecret(Vec::new())));
    assert!(v.needs_reseal(&SealedSecret(vec![0x02, 2, b'k', b'1'])));
}

#[tokio::test]
async fn debug_output_holds_no_secret_or_key() {
    let k1 = key();
    let k2 = key();
    let key_bytes = base64_decode(&k1);
    let v = vault(&[("k1", &k1), ("k2", &k2)], "k2");
    let c = ctx();
    let sealed = v.seal(&secret(), &c).await.unwrap();
    let opened = v.open(&sealed, &c).await.unwrap();

    let mut outputs = vec![
        format!("{:?}", ring(&[("k1", &k1), ("k2", &k2)], "k2")),
        format!("{v:?}"),
        format!("{v:#?}"),
        format!("{sealed:?}"),
        format!("{opened:?}"),
    ];
    for err in [
        v.open(
            &sealed,
            &SealContext {
                integration_id: IntegrationId::new(),
                ..c.clone()
            },
        )
        .await
        .unwrap_err(),
        vault(&[("k3", &key())], "k3")
            .open(&sealed, &c)
            .await
            .unwrap_err(),
        v.open(&SealedSecret(vec![1]), &c).await.unwrap_err(),
    ] {
        outputs.push(format!("{err:?}"));
        outputs.push(err.to_string());
    }
    assert!(
        outputs[0].contains("k1") && outputs[0].contains("k2"),
        "{}",
        outputs[0]
    );
    assert!(outputs[1].contains("k2"), "{}", outputs[1]);
    for out in &outputs {
        for forbidden in [k1.as_str(), k2.as_str(), SECRET, &hex(&key_bytes)] {
            assert!(!out.contains(forbidden), "{out}");
        }
        assert!(!out.contains(&format!("{key_bytes:?}")), "{out}");
        assert!(!out.contains(&format!("{:?}", &key_bytes[..8])), "{out}");
    }
}

#[test]
fn ring_reports_its_key_ids() {
    let r = ring(&[("k1", &key()), ("k2", &key())], "k1");
    assert_eq!(r.active_key_id(), "k1");
    assert_eq!(r.key_ids(), ["k1", "k2"]);
    // Whitespace around entries (e.g. a trailing newline in an env file) is ignored.
    let spaced = format!(" k1 : {} ,\n k2:{}\n", key(), key());
    let r = KeyRing::from_config(&SecretString::from(spaced), " k2 ").unwrap();
    assert_eq!(r.key_ids(), ["k1", "k2"]);
    assert_eq!(r.active_key_id(), "k2");
}

#[test]
fn generated_keys_are_32_random_bytes_of_standard_base64() {
    let a = key();
    assert_eq!(a.len(), 44);
    assert_eq!(base64_decode(&a).len(), 32);
    assert_ne!(a, key());
}

#[test]
fn config_errors_name_the_problem_without_key_material() {
    let good = key();
    let short = "c2hvcnQta2V5LW1hdGVyaWFsLTAxMjM0NQ=="; // 26 bytes
    let long = "bG9uZy1rZXktbWF0ZXJpYWwtMDEyMzQ1Njc4OWFiY2RlZmdoaWo="; // 37 bytes
    let not_b64 = "this is not base64 but it is secret material!";
    let unpadded = good.trim_end_matches('=').to_owned();
    let cases: Vec<(String, &str, &str)> = vec![
        (String::new(), "k1", "no vault keys configured"),
        (" \n ".into(), "k1", "no vault keys configured"),
        (good.clone(), "k1", "entry 1 is not of the form"),
        (
            format!("k1:{good},{good}"),
            "k1",
            "entry 2 is not of the form",
        ),
        (format!("k1:{good},"), "k1", "entry 2 is not of the form"),
        (format!(":{good}"), "k1", "entry 1: the key id must be"),
        (format!("{good}:k1"), "k1", "entry 1: the key id must be"),
        (format!("k 1:{good}"), "k1", "entry 1: the key id must be"),
        (
            format!("{}:{good}", "k".repeat(33)),
            "k1",
            "entry 1: the key id must be",
        ),
        (
            format!("k1:{short}"),
            "k1",
            "vault key 'k1' is not 32 bytes of base64",
        ),
        (
            format!("k1:{good},k2:{long}"),
            "k1",
            "vault key 'k2' is not 32 bytes of base64",
        ),
        (
            format!("k2:{not_b64}"),
            "k2",
            "vault key 'k2' is not 32 bytes of base64",
        ),
        (
            format!("k2:{unpadded}"),
            "k2",
            "vault key 'k2' is not 32 bytes of base64",
        ),
        (
            "k2:".into(),
            "k2",
            "vault key 'k2' is not 32 bytes of base64",
        ),
        (
            format!("k1:{good},k1:{}", key()),
            "k1",
            "vault key id 'k1' appears more than once",
        ),
        (format!("k1:{good}"), "", "the active vault key id must be"),
        (
            format!("k1:{good}"),
            &good,
            "the active vault key id must be",
        ),
        (
            format!("k1:{good},k2:{}", key()),
            "k3",
            "the active vault key 'k3' is not in the key ring (key ids present: k1, k2)",
        ),
    ];
    for (config, active, expected) in cases {
        let err = KeyRing::from_config(&SecretString::from(config.clone()), active).unwrap_err();
        let shown = format!("{err} / {err:?}");
        assert!(shown.contains(expected), "{config:?}: {shown}");
        for material in [good.as_str(), &unpadded, short, long, not_b64] {
            assert!(!shown.contains(material), "{shown}");
        }
    }
}

#[test]
fn dev_key_file_is_created_0600_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (first, file) = KeyRing::load_or_create_dev(&data_dir).unwrap();
    assert!(file.created);
    assert_eq!(file.path, data_dir.join("vault-dev-keys"));
    let meta = fs::metadata(&file.path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(first.active_key_id().starts_with("dev-"));
    assert_eq!(first.key_ids(), [first.active_key_id()]);

    let contents = fs::read_to_string(&file.path).unwrap();
    let keys_line = contents
        .lines()
        .find_map(|l| l.strip_prefix("TRUNKLINE_VAULT_KEYS="))
        .unwrap();
    let (kid, encoded) = keys_line.split_once(':').unwrap();
    assert_eq!(kid, first.active_key_id());
    assert_eq!(base64_decode(encoded).len(), 32);

    let (second, file2) = KeyRing::load_or_create_dev(&data_dir).unwrap();
    assert!(!file2.created);
    assert_eq!(file2.path, file.path);
    assert_eq!(second.active_key_id(), first.active_key_id());
    assert_eq!(fs::read_to_string(&file.path).unwrap(), contents);
}

#[tokio::test]
async fn dev_key_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx();
    let sealed = AesGcmVault::new(KeyRing::load_or_create_dev(dir.path()).unwrap().0)
        .seal(&secret(), &c)
        .await
        .unwrap();
    let (ring, file) = KeyRing::load_or_create_dev(dir.path()).unwrap();
    assert!(!file.created);
    let opened = AesGcmVault::new(ring).open(&sealed, &c).await.unwrap();
    assert_eq!(opened.expose_secret(), SECRET);

    // A recreated file is a new key with a new id: old values fail as unknown, not garbled.
    fs::remove_file(&file.path).unwrap();
    let (fresh, file) = KeyRing::load_or_create_dev(dir.path()).unwrap();
    assert!(file.created);
    assert!(matches!(
        AesGcmVault::new(fresh).open(&sealed, &c).await.unwrap_err(),
        VaultError::UnknownKey(_)
    ));
}

#[test]
fn dev_key_file_with_loose_permissions_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, file) = KeyRing::load_or_create_dev(dir.path()).unwrap();
    let contents = fs::read_to_string(&file.path).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660] {
        fs::set_permissions(&file.path, fs::Permissions::from_mode(mode)).unwrap();
        let err = KeyRing::load_or_create_dev(dir.path()).unwrap_err();
        assert!(
            matches!(err, KeyRingError::DevKeyFileInsecure { mode: m, .. } if m == mode),
            "{err:?}"
        );
        let shown = err.to_string();
        assert!(shown.contains(&format!("{mode:04o}")), "{shown}");
        assert!(shown.contains("0600"), "{shown}");
        assert!(shown.contains(&file.path.display().to_string()), "{shown}");
        // Refused, not repaired or replaced behind the operator's back.
        assert_eq!(fs::read_to_string(&file.path).unwrap(), contents);
    }
    fs::set_permissions(&file.path, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!KeyRing::load_or_create_dev(dir.path()).unwrap().1.created);
}

#[test]
fn broken_dev_key_file_is_reported_without_its_contents() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault-dev-keys");
    let leaked = key();
    let write = |contents: &str| {
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    };
    for (contents, expected) in [
        (format!("{leaked}\n"), "line 1 is not"),
        (
            format!("TRUNKLINE_VAULT_ACTIVE_KEY=k9\nTRUNKLINE_VAULT_KEYS=k1:{leaked}\n"),
            "the active vault key 'k9' is not in the key ring",
        ),
        (
            "TRUNKLINE_VAULT_ACTIVE_KEY=k1\nTRUNKLINE_VAULT_KEYS=k1:c2hvcnQ=\n".into(),
            "vault key 'k1' is not 32 bytes of base64",
        ),
        (String::new(), "no `TRUNKLINE_VAULT_KEYS"),
    ] {
        write(&contents);
        let err = KeyRing::load_or_create_dev(dir.path()).unwrap_err();
        assert!(
            matches!(err, KeyRingError::DevKeyFileInvalid { .. }),
            "{err:?}"
        );
        let shown = format!("{err} / {err:?}");
        assert!(shown.contains(expected), "{shown}");
        assert!(!shown.contains(&leaked), "{shown}");
    }
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    let err = KeyRing::load_or_create_dev(dir.path()).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

fn base64_decode(s: &str) -> Vec<u8> {
    // The standard alphabet with padding, decoded by hand so the test does not share the
    // crate's base64 configuration.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    assert_eq!(s.len() % 4, 0, "padded base64");
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in s.as_bytes().iter().filter(|&&c| c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .expect("base64 character");
        acc = (acc << 6) | u32::try_from(v).unwrap();
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap());
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
