#![doc = include_str!("../README.md")]

pub mod crashpoint;
pub mod livekit;
pub mod telnyx;
pub mod twilio;
