use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt;
use trunkline_core::ports::{Store, StoreError};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Applies the store's pending migrations; returns the versions applied.
pub type MigrateFn = Arc<dyn Fn() -> BoxFuture<Result<Vec<String>, StoreError>> + Send + Sync>;

/// A store on a fresh, unmigrated database, how to migrate it, and how to clean up after.
pub struct Harness {
    store: Arc<dyn Store>,
    migrate: MigrateFn,
    teardown: Option<BoxFuture<()>>,
}

impl fmt::Debug for Harness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness")
            .field("has_teardown", &self.teardown.is_some())
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// `migrate` is the store's own migration entry point, e.g.
    /// `|s: SqliteStore| async move { s.migrate().await }`.
    pub fn new<S, M, Fut>(store: S, migrate: M) -> Self
    where
        S: Store + Clone + 'static,
        M: Fn(S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<String>, StoreError>> + Send + 'static,
    {
        let for_migrations = store.clone();
        let migrate: MigrateFn = Arc::new(move || Box::pin(migrate(for_migrations.clone())));
        Self {
            store: Arc::new(store),
            migrate,
            teardown: None,
        }
    }

    /// Work to do after the case, pass or fail (drop a schema, remove a directory).
    /// It runs after every handle on the store has been dropped.
    #[must_use]
    pub fn on_teardown(mut self, teardown: impl Future<Output = ()> + Send + 'static) -> Self {
        self.teardown = Some(Box::pin(teardown));
        self
    }

    /// Migrate the fresh database, then run `case` on the store.
    pub async fn run<F, Fut>(self, case: F)
    where
        F: FnOnce(Arc<dyn Store>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let Harness {
            store,
            migrate,
            teardown,
        } = self;
        let outcome = AssertUnwindSafe(async move {
            let applied = migrate()
                .await
                .expect("migrations apply to a fresh database");
            assert!(
                !applied.is_empty(),
                "a fresh database must have migrations to apply"
            );
            drop(migrate);
            case(store).await;
        })
        .catch_unwind()
        .await;
        finish(outcome, teardown).await;
    }

    /// Run `case` on the store before any migration, with the means to migrate it.
    pub async fn run_unmigrated<F, Fut>(self, case: F)
    where
        F: FnOnce(Arc<dyn Store>, MigrateFn) -> Fut,
        Fut: Future<Output = ()>,
    {
        let Harness {
            store,
            migrate,
            teardown,
        } = self;
        let outcome = AssertUnwindSafe(case(store, migrate)).catch_unwind().await;
        finish(outcome, teardown).await;
    }
}

async fn finish(
    outcome: Result<(), Box<dyn std::any::Any + Send>>,
    teardown: Option<BoxFuture<()>>,
) {
    if let Some(teardown) = teardown {
        teardown.await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
