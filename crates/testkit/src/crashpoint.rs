//! Crash points: hold one chosen request in an emulator so that a test can kill the client
//! at exactly that moment.
//!
//! A test arms a [`CrashPoint`] on an emulator for the `occurrence`-th request (from 0,
//! counted from arming) of one call (`"CreateTrunk"`, `"CreateSipInboundTrunk"`, … — the
//! emulator's route names as `Debug` prints them). When that request arrives the emulator
//! holds it and marks the point reached:
//!
//! - [`Moment::Before`]: before serving it — nothing changes at the emulator;
//! - [`Moment::After`]: after serving it — the change is made, the answer is not yet sent.
//!
//! The test then kills the client and [`CrashPoint::release`]s the request; a request held
//! `Before` is never served, and an answer held `After` goes to a closed connection: it is
//! lost. Timing plays no part: the kill lands at the chosen point every time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Where in a request the emulator holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Moment {
    /// Before the request is served: the emulator's state is as it was.
    Before,
    /// After the request is served, before its answer is sent.
    After,
}

#[derive(Debug, Default)]
struct Flags {
    reached: AtomicBool,
    released: AtomicBool,
}

/// An armed crash point (see the module documentation). Dropping it releases the request.
#[derive(Debug)]
pub struct CrashPoint {
    flags: Arc<Flags>,
}

impl CrashPoint {
    /// Whether the chosen request has arrived and is being held.
    pub fn reached(&self) -> bool {
        self.flags.reached.load(Ordering::SeqCst)
    }

    /// Wait (polling, from any runtime) until the request is held; `false` after `within`.
    pub async fn wait_reached(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while !self.reached() {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Let the held request go on (a `Before` request is answered without being served).
    pub fn release(&self) {
        self.flags.released.store(true, Ordering::SeqCst);
    }
}

impl Drop for CrashPoint {
    fn drop(&mut self) {
        self.release();
    }
}

struct Armed {
    call: String,
    skip: usize,
    moment: Moment,
    flags: Arc<Flags>,
}

/// The crash points armed on one emulator.
#[derive(Default)]
pub(crate) struct Gates(Mutex<Vec<Armed>>);

/// What the emulator does with one request.
pub(crate) struct Held {
    pub moment: Moment,
    flags: Arc<Flags>,
}

impl Held {
    /// Mark the point reached and wait until the test releases it.
    pub async fn hold(&self) {
        self.flags.reached.store(true, Ordering::SeqCst);
        while !self.flags.released.load(Ordering::SeqCst) {
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Gates {
    pub fn arm(&self, call: &str, occurrence: usize, moment: Moment) -> CrashPoint {
        let flags = Arc::new(Flags::default());
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Armed {
                call: call.to_owned(),
                skip: occurrence,
                moment,
                flags: Arc::clone(&flags),
            });
        CrashPoint { flags }
    }

    /// Called once per request with its call name: the hold, when a point picks it.
    pub fn check(&self, call: Option<&str>) -> Option<Held> {
        let call = call?;
        let mut armed = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Points whose test is gone (released before reached) count for nothing.
        armed.retain(|a| !a.flags.released.load(Ordering::SeqCst));
        let i = armed.iter().position(|a| a.call == call)?;
        if armed[i].skip > 0 {
            armed[i].skip -= 1;
            return None;
        }
        let a = armed.remove(i);
        Some(Held {
            moment: a.moment,
            flags: a.flags,
        })
    }
}
