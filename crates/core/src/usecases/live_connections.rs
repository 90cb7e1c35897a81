//! A per-instance cache of live connections by called number, for the webhook path.
//!
//! Every SIP webhook names the number that was called; routing it needs that number's live
//! connection. Reading it from the store on every delivery (duplicates included) costs a
//! round trip, and parsing the number with libphonenumber costs more CPU than the rest of
//! the delivery's own work. The cache answers from memory, keyed by the number exactly as
//! LiveKit sent it, so a hit needs neither the store nor a parse (the connection carries the
//! number in its normalised form).
//!
//! Consistency:
//! - on this instance, every `save_connection` (connect, reconnect, disconnect, routing
//!   change) goes through this decorator and empties the cache before it returns, so the
//!   next webhook reads the store again;
//! - another instance's change is seen at the latest [`LIVE_CONNECTION_TTL`] after it (an
//!   entry is reused for that long after it was read, then read again). A number connected
//!   elsewhere is seen at once: only live connections are cached, never their absence.
//!
//! Concurrent deliveries for a number that is not in memory (the first calls after a start,
//! or after a quiet spell longer than the TTL) share one store read: the first starts it,
//! the others wait for its answer.
//!
//! An entry in use is read again before it expires: the first delivery that finds it older
//! than [`REFRESH_AFTER`] of the TTL reads the store itself, while every other delivery keeps
//! answering from the entry, which is still within its TTL. So on a number with steady
//! calls nobody waits for an expiry: one delivery per number per refresh pays the round
//! trip any miss would, instead of every delivery in flight as the entry expired. A refresh
//! the store fails is not its delivery's failure while the entry is within its TTL: the
//! entry answers, and the next delivery tries again. A read that fails past the TTL fails
//! its delivery, so the TTL bounds how old an answer can be even while the store is down.
//!
//! Only the webhook path reads through the cache ([`LiveConnections::live_for_called`]);
//! every [`ConnectionStore`] method, `find_live_connection_by_e164` included, goes to the
//! store, so connect and disconnect never decide on cached data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

// tokio's, so that tests can move time (it is the system's clock outside a paused runtime).
use tokio::time::Instant;

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use crate::ids::{CarrierNumberId, ConnectionId, CustomerId, ProviderKind};
use crate::model::NumberConnection;
use crate::phone::E164;
use crate::ports::{ConnectionStore, StoreError};

/// How long another instance's connect, disconnect or routing change may take to reach this
/// instance's webhook path (documented in docs/livekit.md, "The cache of live connections").
pub const LIVE_CONNECTION_TTL: Duration = Duration::from_secs(5);

/// Entries kept at most; past it the cache is emptied (the next deliveries read the store).
const MAX_ENTRIES: usize = 10_000;

/// The share of the TTL after which the next delivery refreshes an entry (see the module).
pub const REFRESH_AFTER: f64 = 0.75;

/// The called number of a webhook, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct CalledNumber {
    /// The number, normalised; `None` when it is not a valid phone number.
    pub number: Option<E164>,
    /// Its live connection, if any.
    pub connection: Option<NumberConnection>,
}

type Read = Shared<BoxFuture<'static, Result<Option<NumberConnection>, StoreError>>>;

#[derive(Default)]
struct State {
    /// Bumped by every local change: a read that started before one is not cached.
    generation: u64,
    entries: HashMap<String, (Instant, NumberConnection)>,
    /// Store reads under way, by number, each with its own id; emptied by local changes,
    /// like `entries`, so nobody joins a read that started before one.
    reading: HashMap<String, (u64, Read)>,
    next_read: u64,
}

/// A [`ConnectionStore`] that also answers the webhook path from memory (see the module).
pub struct LiveConnections {
    inner: Arc<dyn ConnectionStore>,
    ttl: Duration,
    state: Mutex<State>,
}

impl std::fmt::Debug for LiveConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveConnections")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl LiveConnections {
    pub fn new(inner: Arc<dyn ConnectionStore>, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a cache: whatever a panicking holder left is still a valid cache.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The called number `raw` (as the webhook carries it), normalised, with its live
    /// connection. From memory when this instance read it less than the TTL ago and changed
    /// no connection since; otherwise parsed once and read from the store.
    ///
    /// # Errors
    /// Store failures.
    pub async fn live_for_called(&self, raw: &str) -> Result<CalledNumber, StoreError> {
        // `refreshing`: the entry, still valid, that this delivery reads again, and when it
        // expires.
        let (generation, refreshing) = {
            let state = self.state();
            let now = Instant::now();
            match state.entries.get(raw) {
                Some((read_at, conn)) if now < *read_at + self.ttl => {
                    if now < *read_at + self.ttl.mul_f64(REFRESH_AFTER)
                        || state.reading.contains_key(raw)
                    {
                        return Ok(hit(conn));
                    }
                    (state.generation, Some((*read_at + self.ttl, conn.clone())))
                }
                _ => (state.generation, None),
            }
        };
        let number = if let Some((_, conn)) = &refreshing {
            conn.e164.clone()
        } else if let Ok(number) = E164::parse(raw) {
            number
        } else {
            return Ok(CalledNumber {
                number: None,
                connection: None,
            });
        };
        let read_at = Instant::now();
        let (id, read) = {
            let mut state = self.state();
            if let Some(under_way) = state.reading.get(raw) {
                // Another delivery started the refresh meanwhile: the entry still answers.
                if let Some((_, conn)) = &refreshing {
                    return Ok(hit(conn));
                }
                under_way.clone()
            } else {
                let inner = Arc::clone(&self.inner);
                let e164 = number.clone();
                let read = async move { inner.find_live_connection_by_e164(&e164).await }
                    .boxed()
                    .shared();
                state.next_read = state.next_read.wrapping_add(1);
                let under_way = (state.next_read, read);
                state.reading.insert(raw.to_owned(), under_way.clone());
                under_way
            }
        };
        // Whoever polls it drives the read, so it finishes even if its starter went away.
        let connection = read.await;
        {
            let mut state = self.state();
            if state
                .reading
                .get(raw)
                .is_some_and(|(current, _)| *current == id)
            {
                state.reading.remove(raw);
            }
        }
        let connection = match (connection, &refreshing) {
            (Ok(connection), _) => connection,
            // The refresh was ahead of time: while the entry is within its TTL it answers, as
            // it would have without one. The next delivery tries again.
            (Err(e), Some((expires, conn))) if Instant::now() < *expires => {
                tracing::warn!(error = %e, "could not refresh a live connection; answering from memory");
                return Ok(hit(conn));
            }
            (Err(e), _) => return Err(e),
        };
        {
            let mut state = self.state();
            // A local change while reading may have made what was read stale.
            if state.generation == generation {
                match &connection {
                    Some(conn) => {
                        if state.entries.len() >= MAX_ENTRIES {
                            state.entries.clear();
                        }
                        state
                            .entries
                            .insert(raw.to_owned(), (read_at, conn.clone()));
                    }
                    // Disconnected elsewhere: the entry being refreshed answers no more.
                    None => {
                        state.entries.remove(raw);
                    }
                }
            }
        }
        Ok(CalledNumber {
            number: Some(number),
            connection,
        })
    }

    /// Forget everything read so far.
    pub fn invalidate(&self) {
        let mut state = self.state();
        state.generation = state.generation.wrapping_add(1);
        state.entries.clear();
        state.reading.clear();
    }
}

fn hit(conn: &NumberConnection) -> CalledNumber {
    CalledNumber {
        number: Some(conn.e164.clone()),
        connection: Some(conn.clone()),
    }
}

#[async_trait]
impl ConnectionStore for LiveConnections {
    async fn get_connection(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        number: &CarrierNumberId,
    ) -> Result<Option<NumberConnection>, StoreError> {
        self.inner.get_connection(customer, provider, number).await
    }

    async fn get_connection_by_id(
        &self,
        id: ConnectionId,
    ) -> Result<Option<NumberConnection>, StoreError> {
        self.inner.get_connection_by_id(id).await
    }

    async fn find_live_connection_by_e164(
        &self,
        e164: &E164,
    ) -> Result<Option<NumberConnection>, StoreError> {
        self.inner.find_live_connection_by_e164(e164).await
    }

    async fn list_connections(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<Vec<NumberConnection>, StoreError> {
        self.inner.list_connections(customer, provider).await
    }

    async fn save_connection(&self, connection: &NumberConnection) -> Result<(), StoreError> {
        // Before and after: a webhook reading during the write must not cache the old row
        // (the generation check), and none may answer from it afterwards. Also on failure:
        // the write may have happened.
        self.invalidate();
        let saved = self.inner.save_connection(connection).await;
        self.invalidate();
        saved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ConnectionStatus;
    use crate::usecases::fakes::MemoryStore;
    use crate::usecases::fakes::calls::sample_connection;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

    const CALLED: &str = "+14155550100";

    fn cache(ttl: Duration) -> (LiveConnections, MemoryStore) {
        let store = MemoryStore::default();
        store.tables().connections.push(sample_connection(CALLED));
        (LiveConnections::new(Arc::new(store.clone()), ttl), store)
    }

    async fn routed(cache: &LiveConnections) -> bool {
        cache
            .live_for_called(CALLED)
            .await
            .unwrap()
            .connection
            .is_some()
    }

    fn lookups(store: &MemoryStore) -> usize {
        store.calls_to("find_live_connection_by_e164")
    }

    #[tokio::test]
    async fn a_hit_needs_neither_the_store_nor_a_parse() {
        let (cache, store) = cache(Duration::from_secs(60));
        let first = cache.live_for_called(CALLED).await.unwrap();
        assert_eq!(first.number.as_ref().map(E164::as_str), Some(CALLED));
        assert!(first.connection.is_some());
        assert_eq!(lookups(&store), 1);
        let second = cache.live_for_called(CALLED).await.unwrap();
        assert_eq!(second, first);
        assert_eq!(lookups(&store), 1, "answered from memory");
    }

    #[tokio::test]
    async fn a_local_save_is_seen_by_the_next_webhook() {
        let (cache, store) = cache(Duration::from_secs(60));
        let conn = cache
            .live_for_called(CALLED)
            .await
            .unwrap()
            .connection
            .unwrap();
        let mut gone = conn.clone();
        gone.status = ConnectionStatus::Disconnected;
        cache.save_connection(&gone).await.unwrap();
        let after = cache.live_for_called(CALLED).await.unwrap();
        assert_eq!(after.connection, None, "the disconnect is seen at once");
        assert_eq!(lookups(&store), 2);
    }

    #[tokio::test]
    async fn another_instances_change_is_seen_after_the_ttl() {
        let (cache, store) = cache(Duration::from_millis(50));
        assert!(routed(&cache).await);
        // Another instance disconnects the number: straight into the store.
        store.tables().connections[0].status = ConnectionStatus::Disconnected;
        assert!(
            routed(&cache).await,
            "within the ttl the cached connection may still answer"
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            cache.live_for_called(CALLED).await.unwrap().connection,
            None
        );
    }

    #[tokio::test]
    async fn absence_is_not_cached_and_bad_numbers_are_not_looked_up() {
        let (cache, store) = cache(Duration::from_secs(60));
        let other = "+14155550101";
        assert_eq!(cache.live_for_called(other).await.unwrap().connection, None);
        store.tables().connections.push(sample_connection(other));
        assert!(
            cache
                .live_for_called(other)
                .await
                .unwrap()
                .connection
                .is_some(),
            "a number connected elsewhere is seen at once"
        );
        let before = lookups(&store);
        let bad = cache.live_for_called("not a number").await.unwrap();
        assert_eq!(bad.number, None);
        assert_eq!(lookups(&store), before);
    }

    /// A store whose reads wait until the test opens the gate, as a network round trip
    /// lasts a while, so that concurrent deliveries overlap.
    struct Slow {
        store: MemoryStore,
        gate: tokio::sync::Semaphore,
        /// Lookups fail (the database unreachable) while set.
        down: AtomicBool,
    }

    impl Slow {
        fn cache(store: &MemoryStore) -> (LiveConnections, Arc<Slow>) {
            Self::cache_with(store, 0, Duration::from_secs(60))
        }

        /// A cache with `ttl` over a slow store that lets `passes` reads through at first.
        fn cache_with(
            store: &MemoryStore,
            passes: usize,
            ttl: Duration,
        ) -> (LiveConnections, Arc<Slow>) {
            let slow = Arc::new(Slow {
                store: store.clone(),
                gate: tokio::sync::Semaphore::new(passes),
                down: false.into(),
            });
            (LiveConnections::new(slow.clone(), ttl), slow)
        }

        /// Let every read through once the deliveries so far have started theirs.
        async fn open(&self) {
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
            self.gate.add_permits(1_000);
        }
    }

    #[async_trait]
    impl ConnectionStore for Slow {
        async fn get_connection(
            &self,
            customer: &CustomerId,
            provider: ProviderKind,
            number: &CarrierNumberId,
        ) -> Result<Option<NumberConnection>, StoreError> {
            self.store.get_connection(customer, provider, number).await
        }
        async fn get_connection_by_id(
            &self,
            id: ConnectionId,
        ) -> Result<Option<NumberConnection>, StoreError> {
            self.store.get_connection_by_id(id).await
        }
        async fn find_live_connection_by_e164(
            &self,
            e164: &E164,
        ) -> Result<Option<NumberConnection>, StoreError> {
            // Each read takes a pass for good (`open` hands out plenty).
            if let Ok(pass) = self.gate.acquire().await {
                pass.forget();
            }
            if self.down.load(SeqCst) {
                return Err(StoreError::Unavailable("the test took it down".into()));
            }
            self.store.find_live_connection_by_e164(e164).await
        }
        async fn list_connections(
            &self,
            customer: &CustomerId,
            provider: ProviderKind,
        ) -> Result<Vec<NumberConnection>, StoreError> {
            self.store.list_connections(customer, provider).await
        }
        async fn save_connection(&self, c: &NumberConnection) -> Result<(), StoreError> {
            self.store.save_connection(c).await
        }
    }

    /// Issue 17: a burst of deliveries for a number not in memory reads the store once, for
    /// a live number and for an unrouted one (absence is not cached, so without a shared
    /// read every delivery of the burst would read).
    #[tokio::test]
    async fn a_burst_for_a_number_not_in_memory_reads_the_store_once() {
        let (_, store) = cache(Duration::from_secs(60));
        for (raw, routed, reads) in [(CALLED, true, 1), ("+14155550199", false, 2)] {
            let (cache, slow) = Slow::cache(&store);
            let burst = futures::future::join_all((0..10).map(|_| cache.live_for_called(raw)));
            let (answers, ()) = futures::join!(burst, slow.open());
            for answer in answers {
                assert_eq!(answer.unwrap().connection.is_some(), routed);
            }
            assert_eq!(lookups(&store), reads, "one read for the burst of {raw}");
            // Nothing is left under way: a later delivery reads again unless cached.
            let again = cache.live_for_called(raw).await.unwrap();
            assert_eq!(again.connection.is_some(), routed);
            assert_eq!(lookups(&store), reads + usize::from(!routed));
        }
    }

    /// Issue 17: an entry in use is read again before it expires, by one delivery, while
    /// the others keep answering from it; a number disconnected elsewhere stops answering
    /// as soon as that read sees it.
    #[tokio::test(start_paused = true)]
    async fn an_entry_in_use_is_refreshed_before_it_expires_and_nobody_else_waits() {
        let (_, store) = cache(Duration::from_secs(60));
        let (cache, slow) = Slow::cache_with(&store, 1, Duration::from_secs(4));
        assert!(routed(&cache).await);
        assert_eq!(lookups(&store), 1);

        // Before three quarters of the TTL: from memory.
        tokio::time::advance(Duration::from_millis(2_900)).await;
        let early = cache.live_for_called(CALLED).now_or_never();
        assert!(early.is_some_and(|a| a.unwrap().connection.is_some()));
        assert_eq!(lookups(&store), 1);

        // Past them, within the TTL: the next delivery reads again (and waits for the store)…
        tokio::time::advance(Duration::from_millis(200)).await;
        let mut refresher = Box::pin(cache.live_for_called(CALLED));
        assert!(
            futures::poll!(&mut refresher).is_pending(),
            "it reads the store"
        );
        // …while the others answer at once from the entry.
        for _ in 0..3 {
            let other = cache.live_for_called(CALLED).now_or_never();
            assert!(
                other.is_some_and(|a| a.unwrap().connection.is_some()),
                "answered without waiting for the refresh"
            );
        }
        slow.gate.add_permits(1);
        assert!(refresher.await.unwrap().connection.is_some());
        assert_eq!(lookups(&store), 2, "one read for the refresh");

        // Past the first read's TTL the refreshed entry still answers from memory.
        tokio::time::advance(Duration::from_secs(1)).await;
        let later = cache.live_for_called(CALLED).now_or_never();
        assert!(later.is_some_and(|a| a.unwrap().connection.is_some()));
        assert_eq!(lookups(&store), 2);

        // Disconnected on another instance: the next refresh sees it, and from then on
        // the number has no live connection here, before the entry would have expired.
        store.tables().connections[0].status = ConnectionStatus::Disconnected;
        tokio::time::advance(Duration::from_secs(2)).await;
        slow.gate.add_permits(1);
        assert_eq!(
            cache.live_for_called(CALLED).await.unwrap().connection,
            None
        );
        slow.gate.add_permits(1);
        assert_eq!(
            cache.live_for_called(CALLED).await.unwrap().connection,
            None
        );
        assert_eq!(lookups(&store), 4, "absence is never cached");
    }

    /// A refresh is ahead of time: when the store fails it, the entry is still within its
    /// TTL and answers, as it would have without the refresh; only past the TTL does a
    /// store failure reach the delivery.
    #[tokio::test(start_paused = true)]
    async fn a_failed_refresh_answers_from_the_entry_until_it_expires() {
        let (_, store) = cache(Duration::from_secs(60));
        let (cache, slow) = Slow::cache_with(&store, 1, Duration::from_secs(4));
        assert!(routed(&cache).await);
        slow.down.store(true, SeqCst);

        tokio::time::advance(Duration::from_millis(3_100)).await;
        for _ in 0..2 {
            slow.gate.add_permits(1);
            let answer = cache.live_for_called(CALLED).await;
            assert!(
                answer.is_ok_and(|a| a.connection.is_some()),
                "the refresh failed, the entry answers"
            );
        }
        assert_eq!(lookups(&store), 1, "the failed refreshes reached no row");

        // A refresh that fails only once the entry has expired: too old to answer.
        let mut late = Box::pin(cache.live_for_called(CALLED));
        assert!(futures::poll!(&mut late).is_pending(), "it reads the store");
        tokio::time::advance(Duration::from_secs(1)).await;
        slow.gate.add_permits(1);
        assert!(
            matches!(late.await, Err(StoreError::Unavailable(_))),
            "past the TTL the failure is the delivery's"
        );
        slow.gate.add_permits(1);
        assert!(matches!(
            cache.live_for_called(CALLED).await,
            Err(StoreError::Unavailable(_))
        ));

        // Back up: the next delivery reads and caches again.
        slow.down.store(false, SeqCst);
        slow.gate.add_permits(1);
        assert!(routed(&cache).await);
        assert_eq!(lookups(&store), 2);
    }

    /// A read that started before a local change is not joined after it.
    #[tokio::test]
    async fn a_local_change_starts_a_new_read() {
        let (_, store) = cache(Duration::from_secs(60));
        let (cache, slow) = Slow::cache(&store);
        let first = cache.live_for_called(CALLED);
        let after_change = async {
            tokio::task::yield_now().await;
            let mut gone = store.tables().connections[0].clone();
            gone.status = ConnectionStatus::Disconnected;
            cache.save_connection(&gone).await.unwrap();
            let (after, ()) = futures::join!(cache.live_for_called(CALLED), slow.open());
            after
        };
        let (before, after) = futures::join!(first, after_change);
        // The first read reached the store after the change too (the gate opened later).
        assert_eq!(before.unwrap().connection, None);
        assert_eq!(after.unwrap().connection, None, "the change is seen");
        assert_eq!(
            lookups(&store),
            2,
            "two reads: one from before the change, one after"
        );
    }
}
