//! trunkline's benchmarks: the webhook path against its two ceilings (the HTTP stack's
//! `/healthz` and the database's own insert-on-conflict rate), the connect critical path
//! with emulated upstream latency, and the process footprint. The `trunkline-bench` binary
//! runs them (`scripts/bench`); `docs/benchmarks.md` explains the method and the figures.
//!
//! The pure parts (event mix, percentiles, the dispatch check, the critical-path
//! reconstruction) live in their own modules and are unit-tested; the rest drives real
//! processes over loopback and is exercised by running it.

pub mod checks;
pub mod insert;
pub mod instance;
pub mod load;
pub mod machine;
pub mod mix;
pub mod observe;
pub mod scenarios;
pub mod scrape;
pub mod setup;
pub mod stats;
