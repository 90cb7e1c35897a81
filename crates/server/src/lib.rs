#![doc = include_str!("../README.md")]

pub mod auth;
#[cfg(test)]
mod auth_properties;
pub mod cli;
pub mod config;
#[cfg(test)]
mod credentials_properties;
pub mod dev;
pub mod devmode;
pub mod dispatch_timing;
pub mod error;
pub mod extract;
pub mod http;
pub mod jobs;
pub mod openapi;
mod process;
pub mod reconciler;
pub mod routes;
pub mod serve;
pub mod state;
pub mod telemetry;
pub mod throttle;
pub mod vault_cli;
mod wire_errors;

pub use auth::{Authenticator, Caller, ReadScope, WriteScope};
pub use config::{Config, Env};
pub use error::ApiError;
pub use extract::{ApiJson, OptionalApiJson, RequestContext, RequestId};
pub use http::app;
pub use state::{AppState, Stores};

/// Install the process-wide crypto providers: rustls' ring provider (TLS clients) and
/// jsonwebtoken's RustCrypto backend. Safe to call more than once: "already installed" is
/// not an error.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    auth::install_jwt_provider();
}
