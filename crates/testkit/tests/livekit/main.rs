//! The LiveKit emulator over real HTTP: LiveKit's authentication, Twirp, validation, faults,
//! and webhooks signed and shaped as LiveKit sends them.

mod api;
mod client;
mod receiver;
mod webhooks;
