#![doc = include_str!("../README.md")]

mod api;
mod client;
mod config;
mod cursor;
mod error;
mod model;
mod ops;
mod wire;

pub use api::TelnyxClient;
pub use client::USER_AGENT;
pub use config::{
    API_BASE_ENV, ConfigProblem, RETRY_BUDGET_MS_ENV, TIMEOUT_MS_ENV, TelnyxConfig,
    TelnyxConfigError,
};
pub use model::{
    ANI_NUMBER_FORMAT, Balance, Capability, ConnectionId, DNIS_NUMBER_FORMAT, DnsRecordType,
    FailoverPlan, Fqdn, FqdnConnection, FqdnId, FqdnSpec, MAX_FAILOVER, NewConnection, NumberId,
    NumberPage, NumberQuery, RoutingMethod, TelnyxNumber, Transport, Verification,
};
pub use ops::{Idempotency, OperationInfo, TelnyxOperation};
