#![doc = include_str!("../README.md")]

mod codec;
mod error;
mod migrate;
mod rows;
mod schema;
mod secrets;
mod store;
mod sync_ops;

pub use store::SqliteStore;
