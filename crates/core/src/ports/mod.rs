//! Ports: the traits through which the core reaches the outside world.
//!
//! Each is `Send + Sync`, held as `Arc<dyn Port>`, and documents its contract per method:
//! what it returns when something is absent, what must be idempotent, which errors mean
//! what. With the `mock` feature each has a `mockall` mock (`Mock<Trait>`).

mod carrier;
mod errors;
mod jobs;
mod outbound_store;
mod secrets;
mod sip_platform;
mod store;
mod vault;
mod voice_url;

pub use carrier::*;
pub use errors::*;
pub use jobs::*;
pub use outbound_store::*;
pub use secrets::*;
pub use sip_platform::*;
pub use store::*;
pub use vault::*;
pub use voice_url::*;
