#![doc = include_str!("../README.md")]

mod api;
mod carrier;
mod client;
mod config;
mod credentials;
mod cursor;
mod error;
mod model;
mod ops;
mod outbound;
#[cfg(test)]
mod properties;
mod wire;

pub use api::TelnyxClient;
pub use carrier::{DEFAULT_SIP_PORT, TelnyxCarrier};
pub use client::USER_AGENT;
pub use config::{
    API_BASE_ENV, ConfigProblem, RETRY_BUDGET_MS_ENV, TIMEOUT_MS_ENV, TelnyxConfig,
    TelnyxConfigError,
};
pub use credentials::{API_KEY_FIELD, MAX_API_KEY_LEN};
pub use model::{
    ANI_NUMBER_FORMAT, Balance, CREDENTIAL_AUTHENTICATION, Capability, ConnectionId,
    DNIS_NUMBER_FORMAT, DnsRecordType, FailoverPlan, Fqdn, FqdnConnection, FqdnId, FqdnSpec,
    IP_AUTHENTICATION, MAX_FAILOVER, NewConnection, NumberId, NumberPage, NumberQuery,
    OutboundAuth, RoutingMethod, TelnyxNumber, Transport, Verification, VoiceProfile,
};
pub use ops::{
    FQDN_AUTHENTICATION_BODY, FQDN_AUTHENTICATION_SDK_FIELDS, Idempotency, OperationInfo,
    TelnyxOperation,
};
pub use outbound::{TERMINATION_CALLS_PER_SECOND, TERMINATION_HOST, USERNAME_HEADER};
