//! The Twilio emulator over real HTTP: Twilio's behaviour, and answers shaped as the spec says.

mod behaviour;
mod http;
mod shape;
