//! The adapter against the Telnyx emulator over HTTP.

#[path = "../common/mod.rs"]
mod common;

mod carrier;
mod errors;
mod operations;
mod retries;
mod termination;
