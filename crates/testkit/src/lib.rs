#![doc = include_str!("../README.md")]

pub mod livekit;
pub mod telnyx;
pub mod twilio;
