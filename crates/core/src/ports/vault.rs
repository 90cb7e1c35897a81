use async_trait::async_trait;
use secrecy::SecretString;

use super::errors::VaultError;
use crate::model::{SealContext, SealedSecret};

/// Seals and opens customer secrets.
///
/// A sealed value names the key it was sealed with, so a key ring can still open values
/// sealed before a rotation. It is bound to its [`SealContext`]: opened with any other
/// context it fails with [`VaultError::Decrypt`], never with a wrong plaintext.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait CredentialVault: Send + Sync {
    /// Seal with the active key and a fresh random nonce: two seals of one secret differ.
    async fn seal(
        &self,
        secret: &SecretString,
        ctx: &SealContext,
    ) -> Result<SealedSecret, VaultError>;

    /// Open a sealed value.
    ///
    /// # Errors
    /// `UnknownKey` for a key id not in the ring; `Decrypt` for a wrong key, a wrong
    /// context or tampered bytes; `Malformed` for bytes that are not a sealed value.
    async fn open(
        &self,
        sealed: &SealedSecret,
        ctx: &SealContext,
    ) -> Result<SecretString, VaultError>;

    /// The id of the key that sealed the value, without opening it; `None` when the bytes
    /// name none (or the vault cannot tell).
    fn key_id(&self, sealed: &SealedSecret) -> Option<String> {
        let _ = sealed;
        None
    }

    /// Whether the value was sealed with a key other than the active one.
    fn needs_reseal(&self, sealed: &SealedSecret) -> bool;

    /// Open and seal again with the active key (key rotation).
    async fn reseal(
        &self,
        sealed: &SealedSecret,
        ctx: &SealContext,
    ) -> Result<SealedSecret, VaultError>;
}
