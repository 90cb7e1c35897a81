use std::fmt;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use zeroize::Zeroizing;

/// Length of an AES-256 key in bytes.
pub(crate) const KEY_LEN: usize = 32;
/// Longest accepted key id, in bytes.
pub(crate) const MAX_KID_LEN: usize = 32;

/// Why a key ring could not be built. Messages name the problem and, where it is safe,
/// the key id; they never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRingError {
    #[error("no vault keys configured: expected `kid:base64key[,kid2:base64key2…]`")]
    Empty,
    // The entry is not echoed: without a recognisable key id it may be bare key material.
    #[error("vault key entry {position} is not of the form `kid:base64key`")]
    MalformedEntry { position: usize },
    // Not echoed either: a key pasted in front of the `:` would otherwise be printed.
    #[error(
        "vault key entry {position}: the key id must be 1 to 32 characters of A-Z, a-z, 0-9, `_` or `-`"
    )]
    InvalidKeyId { position: usize },
    #[error(
        "vault key '{kid}' is not 32 bytes of base64 (generate one with `openssl rand -base64 32`)"
    )]
    InvalidKey { kid: String },
    #[error("vault key id '{kid}' appears more than once")]
    DuplicateKeyId { kid: String },
    #[error(
        "the active vault key id must be 1 to 32 characters of A-Z, a-z, 0-9, `_` or `-` (it names a key; it is not the key itself)"
    )]
    InvalidActiveKeyId,
    #[error("the active vault key '{kid}' is not in the key ring (key ids present: {available})")]
    ActiveKeyNotInRing { kid: String, available: String },
    #[error(
        "development vault key file {} has permissions {mode:04o}; it must be readable by its owner only (0600). Refusing to use it: run `chmod 600` on it if it is yours, or delete it to generate a new key (values sealed with the old key will no longer open)",
        path.display()
    )]
    DevKeyFileInsecure { path: PathBuf, mode: u32 },
    #[error("development vault key file {} is not usable: {problem}", path.display())]
    DevKeyFileInvalid { path: PathBuf, problem: String },
    #[error("development vault key file {}: {source}", path.display())]
    DevKeyFileIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the operating system random number generator failed")]
    Random,
}

/// One key: its id and 32 bytes in a single heap allocation that is wiped on drop.
struct Key {
    kid: String,
    bytes: SecretBox<[u8; KEY_LEN]>,
}

/// The vault's keys: every key that may have sealed a stored value, and the active one
/// that seals new values.
///
/// Key material is wiped from memory when the ring is dropped; `Debug` shows key ids only.
pub struct KeyRing {
    keys: Vec<Key>,
    active: usize,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("active_key_id", &self.active_key_id())
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

impl KeyRing {
    /// Build a ring from `kid:base64key,kid2:base64key2` (the `TRUNKLINE_VAULT_KEYS` form)
    /// and the id of the key that seals new values (`TRUNKLINE_VAULT_ACTIVE_KEY`).
    ///
    /// Whitespace around entries, ids and keys is ignored. Keys are standard base64
    /// (with padding) of exactly 32 bytes; key ids are 1 to 32 characters of
    /// `[A-Za-z0-9_-]` and unique.
    pub fn from_config(keys: &SecretString, active_kid: &str) -> Result<KeyRing, KeyRingError> {
        Self::parse(keys.expose_secret(), active_kid)
    }

    /// [`KeyRing::from_config`] on a borrowed string (the development key file's contents).
    pub(crate) fn parse(keys: &str, active_kid: &str) -> Result<KeyRing, KeyRingError> {
        let keys = parse_keys(keys)?;
        let active_kid = active_kid.trim();
        if !is_valid_key_id(active_kid) {
            return Err(KeyRingError::InvalidActiveKeyId);
        }
        let active = keys
            .iter()
            .position(|k| k.kid == active_kid)
            .ok_or_else(|| KeyRingError::ActiveKeyNotInRing {
                kid: active_kid.to_owned(),
                available: keys
                    .iter()
                    .map(|k| k.kid.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Ok(KeyRing { keys, active })
    }

    /// Load the development key file `vault-dev-keys` from `data_dir`, or create it with a
    /// fresh key (mode 0600) when it does not exist. Refuses a file readable or writable by
    /// group or others. For development only: the key sits next to the data it protects.
    pub fn load_or_create_dev(
        data_dir: &std::path::Path,
    ) -> Result<(KeyRing, crate::DevKeyFile), KeyRingError> {
        crate::dev::load_or_create(data_dir)
    }

    /// A new key for `TRUNKLINE_VAULT_KEYS`: standard base64 of 32 random bytes from the
    /// operating system.
    ///
    /// # Errors
    /// `KeyRingError::Random` when the operating system random number generator fails (there is
    /// no safe fallback, so the caller decides).
    pub fn generate_key() -> Result<SecretString, KeyRingError> {
        let key = random_key()?;
        Ok(encode_key(&key))
    }

    /// The id of the key that seals new values.
    pub fn active_key_id(&self) -> &str {
        &self.keys[self.active].kid
    }

    /// Every key id in the ring, in configuration order.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.kid.clone()).collect()
    }

    /// The active key id and key bytes.
    pub(crate) fn active_key(&self) -> (&str, &[u8; KEY_LEN]) {
        let key = &self.keys[self.active];
        (&key.kid, key.bytes.expose_secret())
    }

    /// The key bytes for `kid`, if the ring has that key.
    pub(crate) fn key(&self, kid: &str) -> Option<&[u8; KEY_LEN]> {
        self.keys
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| k.bytes.expose_secret())
    }
}

/// Key ids: 1 to 32 characters of `[A-Za-z0-9_-]`, so they are safe to print and store.
pub(crate) fn is_valid_key_id(kid: &str) -> bool {
    (1..=MAX_KID_LEN).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parse `kid:base64key,…` into keys, in order.
fn parse_keys(raw: &str) -> Result<Vec<Key>, KeyRingError> {
    if raw.trim().is_empty() {
        return Err(KeyRingError::Empty);
    }
    let mut keys: Vec<Key> = Vec::new();
    for (index, entry) in raw.split(',').enumerate() {
        let position = index + 1;
        let (kid, encoded) = entry
            .split_once(':')
            .ok_or(KeyRingError::MalformedEntry { position })?;
        let kid = kid.trim();
        if !is_valid_key_id(kid) {
            return Err(KeyRingError::InvalidKeyId { position });
        }
        if keys.iter().any(|k| k.kid == kid) {
            return Err(KeyRingError::DuplicateKeyId {
                kid: kid.to_owned(),
            });
        }
        let bytes = decode_key(encoded.trim()).ok_or_else(|| KeyRingError::InvalidKey {
            kid: kid.to_owned(),
        })?;
        keys.push(Key {
            kid: kid.to_owned(),
            bytes,
        });
    }
    Ok(keys)
}

/// Decode one base64 key of exactly [`KEY_LEN`] bytes; every intermediate buffer is wiped.
fn decode_key(encoded: &str) -> Option<SecretBox<[u8; KEY_LEN]>> {
    let decoded = Zeroizing::new(STANDARD.decode(encoded).ok()?);
    if decoded.len() != KEY_LEN {
        return None;
    }
    Some(SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| {
        k.copy_from_slice(&decoded);
    }))
}

/// 32 bytes from the operating system's generator, in a buffer wiped on drop.
pub(crate) fn random_key() -> Result<SecretBox<[u8; KEY_LEN]>, KeyRingError> {
    let mut failed = false;
    let key = SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| {
        failed = OsRng.try_fill_bytes(k).is_err();
    });
    if failed {
        return Err(KeyRingError::Random);
    }
    Ok(key)
}

pub(crate) fn encode_key(key: &SecretBox<[u8; KEY_LEN]>) -> SecretString {
    SecretString::from(STANDARD.encode(key.expose_secret()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_rules() {
        for ok in ["k", "k1", "key_2024-01", &"a".repeat(32)] {
            assert!(is_valid_key_id(ok), "{ok}");
        }
        for bad in [
            "",
            &"a".repeat(33),
            "k 1",
            "k:1",
            "k.1",
            "ключ",
            "k/1",
            "k+1",
            "k=",
        ] {
            assert!(!is_valid_key_id(bad), "{bad}");
        }
    }

    #[test]
    fn random_keys_are_32_bytes_and_differ() {
        let a = random_key().unwrap();
        let b = random_key().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        let encoded = encode_key(&a);
        assert_eq!(
            STANDARD.decode(encoded.expose_secret()).unwrap(),
            a.expose_secret()
        );
    }
}
