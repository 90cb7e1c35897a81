//! What trunkline's two SQL store adapters (`trunkline-store-postgres`,
//! `trunkline-store-sqlite`) share, written once: the stored forms of domain values
//! ([`codec`]), the column encodings each backend picks ([`encoding`]), the error mapping
//! ([`error`]), the dispatch-claim decisions ([`claim`]), and the diesel code that reads the
//! same for both backends, as macros each backend expands against its own `diesel::table!`s
//! and column types ([`rows!`], and one macro per port).
//!
//! What really differs stays in the backends: SQL text in each dialect, migrations, schema,
//! connection handling, and the statements that need a dialect's own features.

mod binds;
pub mod claim;
pub mod codec;
pub mod encoding;
pub mod error;
mod fleet;
pub mod jobs;
pub mod migrations;
mod outbound;
mod ports;
mod rows;
mod secrets;
mod voice_url;
