#![doc = include_str!("../README.md")]

mod concurrency;
pub mod crashpoint;
pub mod livekit;
pub mod telnyx;
pub mod twilio;

pub use concurrency::ConcurrencyStats;
