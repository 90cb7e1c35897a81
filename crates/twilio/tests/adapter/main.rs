//! The adapter against the Twilio emulator over real HTTP on 127.0.0.1.

#[path = "../common/mod.rs"]
mod common;

mod errors;
mod operations;
mod retries;
