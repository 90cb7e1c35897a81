//! The Telnyx emulator over real HTTP: Telnyx's behaviour, and answers shaped as the spec says.

mod behaviour;
mod faults;
mod http;
mod shape;
