//! # trunkline-core
//!
//! The domain of trunkline: parsed identifiers and values ([`ids`], [`phone`], [`sip`]),
//! entities ([`model`]), the normalized error vocabulary ([`error`]) and the ports
//! ([`ports`]) through which the core reaches the outside world.
//!
//! Nothing in this crate performs I/O or knows a framework: adapters implement the ports,
//! the `server` crate wires them. Every value that crosses into the core is parsed at the
//! edge into a newtype ("parse, don't validate"), so a raw string never reaches a use case.
//!
//! With the `mock` feature every port also has a `mockall` mock (`MockCarrierProvider`,
//! `MockIntegrationStore`, ...), for what only a mock can produce behind the server's builder
//! (`crates/server/tests/mocked_adapters.rs`). The use cases' own unit tests run on
//! `memory::MemoryStore` for every store port (one complete store in memory that passes the
//! store contract suite like the real stores; compiled for these tests and with the
//! `memory-store` feature, which only test code enables) and on the hand-written carrier,
//! LiveKit and vault fakes of `usecases/fakes.rs`.

pub mod error;
pub mod ids;
pub mod limits;
#[cfg(any(test, feature = "memory-store"))]
pub mod memory;
pub mod model;
pub mod phone;
pub mod ports;
pub mod sip;
pub mod usecases;

pub use error::{ErrorCode, ValidationError};
pub use ids::*;
pub use phone::E164;
pub use sip::SipTarget;

/// Secrets are `secrecy::SecretString` from the moment they are parsed.
pub use secrecy::{ExposeSecret, SecretString};
