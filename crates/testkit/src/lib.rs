#![doc = include_str!("../README.md")]

pub mod crashpoint;
mod concurrency;
pub mod livekit;
pub mod telnyx;
pub mod twilio;

pub use concurrency::ConcurrencyStats;
