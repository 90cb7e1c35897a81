use std::fmt;
use std::time::Duration;

use crate::error::{Error, ErrorCode};

/// A failure of an external provider (carrier or SIP platform), already classified.
///
/// `message` is safe to show to the customer: adapters never put credentials, tokens or
/// raw response bodies in it. `provider_code` keeps the provider's own code (Twilio's
/// `20003`, ...) for support.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProviderError {
    pub code: ErrorCode,
    pub message: String,
    pub provider_code: Option<String>,
    /// When the provider said how long to wait (HTTP `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            provider_code: None,
            retry_after: None,
        }
    }

    #[must_use]
    pub fn with_provider_code(mut self, code: impl Into<String>) -> Self {
        self.provider_code = Some(code.into());
        self
    }

    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// A transport failure or 5xx: `PROVIDER_UNAVAILABLE`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ProviderUnavailable, message)
    }

    /// Worth retrying later without changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.code,
            ErrorCode::RateLimited | ErrorCode::ProviderUnavailable
        )
    }
}

impl fmt::Debug for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderError")
            .field("code", &self.code)
            .field("message", &self.message)
            .field("provider_code", &self.provider_code)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

/// A store failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (the message says which).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database could not be reached or timed out; retrying may help.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The schema is missing or behind (migrations not applied).
    #[error("store not migrated: {0}")]
    NotMigrated(String),
    /// A stored value did not parse back into a domain value.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// Anything else the database reported.
    #[error("store error: {0}")]
    Other(String),
}

/// A vault failure. Messages never include key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The sealed value names a key id the key ring does not have.
    #[error("sealed with unknown key id {0:?}")]
    UnknownKey(String),
    /// Authentication failed: wrong key, wrong associated data, or tampered bytes.
    #[error("sealed value does not open with this key and context")]
    Decrypt,
    /// The bytes are not a sealed value of a known format.
    #[error("malformed sealed value: {0}")]
    Malformed(&'static str),
    /// Encryption itself failed.
    #[error("encryption failed")]
    Encrypt,
}

// The use cases' error from each port failure. Here rather than in `error`, which the ports
// depend on: the vocabulary knows no port.
impl From<ProviderError> for Error {
    fn from(e: ProviderError) -> Self {
        Self {
            code: e.code,
            message: e.message,
            provider_code: e.provider_code,
            retry_after: e.retry_after,
            internal: None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self {
                internal: Some(e.to_string()),
                ..Self::new(
                    ErrorCode::ServiceUnavailable,
                    "the database is unavailable; retry",
                )
            },
            StoreError::Conflict(_) => Self {
                internal: Some(e.to_string()),
                ..Self::new(ErrorCode::Conflict, "a concurrent change conflicted; retry")
            },
            other => Self::internal(other.to_string()),
        }
    }
}

impl From<VaultError> for Error {
    fn from(e: VaultError) -> Self {
        Self::internal(format!("vault: {e}"))
    }
}
