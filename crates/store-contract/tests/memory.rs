//! The shared store contract, against the in-memory store that the core's use-case tests
//! run on: a rule those tests rely on is a rule the real stores keep.

use trunkline_core::memory::MemoryStore;
use trunkline_store_contract::Harness;

/// Nothing to wait for: a fresh memory store is a value.
fn fresh_store() -> std::future::Ready<Option<Harness>> {
    std::future::ready(Some(Harness::new(
        MemoryStore::unmigrated(),
        |s: MemoryStore| async move { s.migrate() },
    )))
}

trunkline_store_contract::contract_tests!(fresh_store);
