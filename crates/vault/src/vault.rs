use std::fmt;

use aes_gcm::aead::AeadInPlace as _;
use aes_gcm::{Aes256Gcm, Key, KeyInit as _, Nonce, Tag};
use async_trait::async_trait;
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret as _, SecretString};
use trunkline_core::model::{SealContext, SealedSecret};
use trunkline_core::ports::{CredentialVault, VaultError};
use zeroize::{Zeroize as _, Zeroizing};

use crate::format::{self, NONCE_LEN, TAG_LEN};
use crate::keyring::{KEY_LEN, KeyRing};

/// [`CredentialVault`] with AES-256-GCM: a fresh random 96-bit nonce per seal, the key id
/// in the sealed value, and the [`SealContext`] as associated data.
///
/// `Debug` shows the key ids only.
pub struct AesGcmVault {
    ring: KeyRing,
}

impl fmt::Debug for AesGcmVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AesGcmVault")
            .field("ring", &self.ring)
            .finish()
    }
}

impl AesGcmVault {
    pub fn new(ring: KeyRing) -> Self {
        Self { ring }
    }

    fn seal_sync(
        &self,
        secret: &SecretString,
        ctx: &SealContext,
    ) -> Result<SealedSecret, VaultError> {
        let (kid, key) = self.ring.active_key();
        let plaintext = secret.expose_secret().as_bytes();
        let mut nonce = [0u8; NONCE_LEN];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|_| VaultError::Encrypt)?;

        // Built in one buffer and encrypted in place: the plaintext is never copied elsewhere.
        let mut out = format::header(kid);
        out.reserve_exact(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        let body = out.len();
        out.extend_from_slice(plaintext);
        let aad = format::associated_data(kid, ctx);
        let sealed = cipher(key).encrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            &aad,
            &mut out[body..],
        );
        let Ok(tag) = sealed else {
            out.zeroize();
            return Err(VaultError::Encrypt);
        };
        out.extend_from_slice(&tag);
        Ok(SealedSecret(out))
    }

    fn open_sync(
        &self,
        sealed: &SealedSecret,
        ctx: &SealContext,
    ) -> Result<SecretString, VaultError> {
        let parts = format::parse(&sealed.0)?;
        let key = self
            .ring
            .key(parts.kid)
            .ok_or_else(|| VaultError::UnknownKey(parts.kid.to_owned()))?;
        let aad = format::associated_data(parts.kid, ctx);
        let mut plaintext = Zeroizing::new(parts.ciphertext.to_vec());
        cipher(key)
            .decrypt_in_place_detached(
                Nonce::from_slice(parts.nonce),
                &aad,
                &mut plaintext,
                Tag::from_slice(parts.tag),
            )
            .map_err(|_| VaultError::Decrypt)?;
        // Authentic, so it is what `seal` was given: a `str`. Checked anyway rather than trusted.
        let text = std::str::from_utf8(&plaintext)
            .map_err(|_| VaultError::Malformed("sealed secret is not UTF-8"))?;
        // An exact-size copy: converting the buffer itself could reallocate and leave an
        // unwiped copy behind; this one is wiped when `plaintext` drops.
        Ok(SecretString::from(Box::<str>::from(text)))
    }
}

/// A cipher for one operation; with the `zeroize` features of `aes` and `polyval` its
/// expanded key is wiped when it drops.
fn cipher(key: &[u8; KEY_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

#[async_trait]
impl CredentialVault for AesGcmVault {
    async fn seal(
        &self,
        secret: &SecretString,
        ctx: &SealContext,
    ) -> Result<SealedSecret, VaultError> {
        self.seal_sync(secret, ctx)
    }

    async fn open(
        &self,
        sealed: &SealedSecret,
        ctx: &SealContext,
    ) -> Result<SecretString, VaultError> {
        self.open_sync(sealed, ctx)
    }

    /// True for anything not sealed with the active key, including bytes that do not parse:
    /// a rotation sweep then calls [`CredentialVault::reseal`], which reports the problem,
    /// instead of silently skipping a corrupt value.
    fn key_id(&self, sealed: &SealedSecret) -> Option<String> {
        format::parse(&sealed.0).ok().map(|p| p.kid.to_owned())
    }

    fn needs_reseal(&self, sealed: &SealedSecret) -> bool {
        format::parse(&sealed.0).map_or(true, |parts| parts.kid != self.ring.active_key_id())
    }

    async fn reseal(
        &self,
        sealed: &SealedSecret,
        ctx: &SealContext,
    ) -> Result<SealedSecret, VaultError> {
        let secret = self.open_sync(sealed, ctx)?;
        self.seal_sync(&secret, ctx)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;
    use trunkline_core::{CustomerId, IntegrationId, ProviderKind};

    use super::*;

    /// `ProviderKind` has one value, so the public API cannot seal for one provider and open
    /// for another; this opens by hand with the provider field of the associated data changed.
    #[test]
    fn provider_is_bound_into_the_associated_data() {
        let key = crate::keyring::random_key().unwrap();
        let config = format!("k1:{}", crate::keyring::encode_key(&key).expose_secret());
        let vault =
            AesGcmVault::new(KeyRing::from_config(&SecretString::from(config), "k1").unwrap());
        let ctx = SealContext {
            customer_id: CustomerId::parse("cust_1").unwrap(),
            integration_id: IntegrationId::new(),
            provider: ProviderKind::Twilio,
        };
        let sealed = vault.seal_sync(&SecretString::from("token"), &ctx).unwrap();
        let parts = format::parse(&sealed.0).unwrap();
        let open_as = |provider: &str| {
            let aad = format::encode_associated_data(
                "k1",
                "cust_1",
                ctx.integration_id.as_uuid().as_bytes(),
                provider,
            );
            let mut buf = parts.ciphertext.to_vec();
            cipher(key.expose_secret())
                .decrypt_in_place_detached(
                    Nonce::from_slice(parts.nonce),
                    &aad,
                    &mut buf,
                    Tag::from_slice(parts.tag),
                )
                .map(|()| buf)
        };
        assert_eq!(open_as("twilio").unwrap(), b"token");
        for other in ["telnyx", "Twilio", "twilio\0", ""] {
            assert!(open_as(other).is_err(), "{other}");
        }
    }
}
