//! Where the SQLite connections run their blocking calls.
//!
//! diesel-async's `SyncConnectionWrapper` runs every statement with `spawn_blocking` and, when
//! the caller drops the future before the statement ends (a client that went away, a timeout
//! around a store call), waits for it in `Drop` with `tokio::task::block_in_place`. That
//! panics on a current-thread runtime, and every actix worker is one: a request dropped
//! mid-statement took the worker down (`a_call_dropped_mid_statement_on_a_current_thread_runtime_is_harmless`
//! in `tests/sqlite.rs`). The wait itself is needed: until the statement ends, its blocking
//! task holds the connection, and the pool must not hand the connection out again (the
//! wrapper's transaction bookkeeping panics on a connection still shared).
//!
//! [`Blocking`] keeps the wait and drops `block_in_place`: the task raises a flag when it
//! is done (run or dropped unrun), and a future dropped before that blocks its thread on the
//! flag. The wait lasts as long as the statement, at most `busy_timeout`.
//!
//! The store's writer connections ([`Blocking<Write>`]) also take the process's write turn
//! around each blocking call: see [`Write`].

use std::error::Error;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll};

use diesel_async::sync_connection_wrapper::SpawnBlocking;
use parking_lot::{FairMutex, FairMutexGuard};
use tokio::task::JoinHandle;

type BoxError = Box<dyn Error + Send + Sync + 'static>;
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whether a connection's blocking calls wait for a turn first.
pub(crate) trait Turn: Send + 'static {
    fn take() -> Option<FairMutexGuard<'static, ()>>;
}

/// Reads: WAL lets any number of them run beside each other and beside the writer.
#[derive(Debug)]
pub(crate) struct Read;

impl Turn for Read {
    fn take() -> Option<FairMutexGuard<'static, ()>> {
        None
    }
}

/// Writes: one at a time in this process, taken in the order asked for.
///
/// SQLite lets one writer in at a time. A connection that finds the write lock taken sleeps
/// in SQLite's busy handler, 1, 2, 5 … up to 100 ms a turn, and is not woken when the lock
/// frees, while a newcomer may take the lock first: under a steady stream of webhooks a few
/// writes waited tens of ms and one 1.8 s (docs/benchmarks.md). Blocking on this fair lock
/// instead, a writer is woken as soon as the one before it is done, and the writers of this
/// process never meet at SQLite's lock. Every write runs inside one blocking call (a
/// transaction is one `immediate_transaction` closure), so holding the turn for the call
/// holds it for the whole write. `busy_timeout` is left for other processes on the file.
#[derive(Debug)]
pub(crate) struct Write;

static WRITE_TURN: FairMutex<()> = parking_lot::const_fair_mutex(());

impl Turn for Write {
    fn take() -> Option<FairMutexGuard<'static, ()>> {
        Some(WRITE_TURN.lock())
    }
}

/// The runtime whose blocking pool runs a connection's statements, and whether they take
/// the write turn ([`Turn`]).
#[derive(Debug)]
pub(crate) struct Blocking<T: Turn = Read> {
    runtime: Runtime,
    turn: PhantomData<T>,
}

#[derive(Debug)]
enum Runtime {
    Handle(tokio::runtime::Handle),
    /// Outside any runtime (never in trunkline, which opens its store inside one).
    Owned(Arc<tokio::runtime::Runtime>),
}

impl<T: Turn> SpawnBlocking for Blocking<T> {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, BoxError>>
    where
        R: Send + 'static,
    {
        let done = Arc::new(Done::default());
        let signal = Signal(done.clone());
        // `_signal` is dropped after `task` and everything it captured (the connection):
        // when the flag is up, the connection is free. The turn is given back just before.
        let run = move || {
            let _signal = signal;
            let _turn = T::take();
            task()
        };
        let handle = match &self.runtime {
            Runtime::Handle(h) => h.spawn_blocking(run),
            Runtime::Owned(rt) => rt.spawn_blocking(run),
        };
        Box::pin(WaitOnDrop { handle, done })
    }

    fn get_runtime() -> Self {
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(handle) => Runtime::Handle(handle),
            Err(_) => Runtime::Owned(Arc::new(
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("a runtime for SQLite's blocking calls"),
            )),
        };
        Self {
            runtime,
            turn: PhantomData,
        }
    }
}

/// Raised once the blocking task is over.
#[derive(Debug, Default)]
struct Done {
    over: Mutex<bool>,
    changed: Condvar,
}

impl Done {
    fn wait(&self) {
        let mut over = self.over.lock().unwrap_or_else(PoisonError::into_inner);
        while !*over {
            over = self
                .changed
                .wait(over)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Raises the flag when dropped: after the task ran, panicked, or was dropped unrun.
#[derive(Debug)]
struct Signal(Arc<Done>);

impl Drop for Signal {
    fn drop(&mut self) {
        *self.0.over.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.0.changed.notify_all();
    }
}

/// The statement's result; dropped early, it waits for the statement to end.
struct WaitOnDrop<R> {
    handle: JoinHandle<R>,
    done: Arc<Done>,
}

impl<R> Future for WaitOnDrop<R> {
    type Output = Result<R, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.handle)
            .poll(cx)
            .map(|r| r.map_err(BoxError::from))
    }
}

impl<R> Drop for WaitOnDrop<R> {
    fn drop(&mut self) {
        if !self.handle.is_finished() {
            self.done.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_call_waits_for_its_task_without_panicking() {
        let mut rt = <Blocking>::get_runtime();
        let started = Instant::now();
        let call = rt.spawn_blocking(|| std::thread::sleep(Duration::from_millis(150)));
        let gave_up = tokio::time::timeout(Duration::from_millis(10), call).await;
        assert!(gave_up.is_err());
        // The drop above waited for the task: it is over by now.
        assert!(started.elapsed() >= Duration::from_millis(150));
        let answer = rt.spawn_blocking(|| 42).await.unwrap();
        assert_eq!(answer, 42);
    }
}
