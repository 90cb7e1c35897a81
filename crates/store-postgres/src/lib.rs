#![doc = include_str!("../README.md")]

mod codec;
mod error;
mod migrate;
mod rows;
mod schema;
mod secrets;
mod store;

pub use store::PostgresStore;
