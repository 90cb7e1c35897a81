#![doc = include_str!("../README.md")]

mod carrier;
mod client;
mod config;
mod credentials;
mod cursor;
mod error;
mod market;
mod ops;
#[cfg(test)]
mod properties;
mod sid;
mod termination;
mod voice;
pub mod webhook;
mod wire;

pub use carrier::{MAX_FRIENDLY_NAME, TwilioCarrier};
pub use client::USER_AGENT;
pub use config::{
    API_BASE_ENV, ConfigProblem, RETRY_BUDGET_MS_ENV, TIMEOUT_MS_ENV, TRUNKING_BASE_ENV,
    TwilioConfig, TwilioConfigError,
};
pub use credentials::MAX_SECRET_LEN;
pub use ops::{Idempotency, OperationInfo, TwilioHost, TwilioOperation};
pub use sid::{AccountSid, ApiKeySid, ApplicationSid, OriginationUrlSid, PhoneNumberSid, TrunkSid};
pub use voice::VoiceConfig;

/// The paging cursor's codec, for the fuzz targets in `fuzz/` only (the crate's API keeps
/// it private: a cursor is made and read only by the adapter).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use trunkline_core::ports::ProviderError;

    use crate::sid::AccountSid;

    pub fn encode_cursor(next_page_uri: &str, account: &AccountSid) -> Option<String> {
        crate::cursor::encode(next_page_uri, account)
    }

    pub fn decode_cursor(
        cursor: &str,
        account: &AccountSid,
    ) -> Result<Vec<(String, String)>, ProviderError> {
        crate::cursor::decode(cursor, account)
    }
}
