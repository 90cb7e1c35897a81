#![doc = include_str!("../README.md")]

mod blocking;
mod error;
mod jobs;
mod migrate;
mod outbound;
mod rows;
mod schema;
mod secrets;
mod store;
mod sync_ops;
mod voice_url;

pub use store::SqliteStore;
