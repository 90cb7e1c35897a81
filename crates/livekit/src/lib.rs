#![doc = include_str!("../README.md")]

mod config;
mod error;
mod outbound;
mod platform;
mod twirp;
mod webhook;

pub use config::{
    ALLOWED_ADDRESSES_ENV, API_KEY_ENV, API_SECRET_ENV, AUTH_PASSWORD_ENV, AUTH_USERNAME_ENV,
    InboundTrunkOptions, LiveKitConfig, LiveKitConfigError, MEDIA_ENCRYPTION_ENV, MediaEncryption,
    REQUEST_TIMEOUT_ENV, URL_ENV,
};
pub use platform::{LiveKitPlatform, install_jwt_crypto_provider};
pub use twirp::USER_AGENT_VALUE;
pub use webhook::{ATTR_CALL_ID, ATTR_CALLED, ATTR_CALLER, ATTR_TRUNK_ID};
