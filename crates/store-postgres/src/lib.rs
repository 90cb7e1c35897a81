#![doc = include_str!("../README.md")]

mod error;
mod jobs;
mod migrate;
mod outbound;
mod prepared;
mod rows;
mod schema;
mod secrets;
mod store;
mod voice_url;

pub use store::PostgresStore;
