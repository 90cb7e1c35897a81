//! Stored text forms of domain values, and parsing them back.
//!
//! Shared by both store adapters (`store-sqlite`, `store-postgres`) so that both store the
//! same forms: enum names are the domain's snake_case wire names, ids their canonical strings.
//! Pure functions, no I/O. A value that does not parse back is `StoreError::Corrupt`,
//! naming the column but never echoing the value (it may be personal data).

use std::fmt::Display;
use std::time::Duration;

use trunkline_core::error::ValidationError;
use trunkline_core::model::{
    AuditAction, CallStatus, ConnectionStatus, DispatchStatus, IntegrationStatus, TrunkStrategy,
};
use trunkline_core::ports::{StoreError, VoiceRouteCandidate};

/// Longest lease or claim time-to-live the stores accept; longer values are clamped so that
/// `now + ttl` cannot overflow a timestamp. Nobody holds a lease for a century on purpose.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

pub fn corrupt(column: &str, err: impl Display) -> StoreError {
    StoreError::Corrupt(format!("{column}: {err}"))
}

/// Parse a required stored value with one of the domain parsers.
pub fn parse<T>(
    column: &str,
    raw: &str,
    parser: impl FnOnce(&str) -> Result<T, ValidationError>,
) -> Result<T, StoreError> {
    parser(raw).map_err(|e| corrupt(column, e.reason))
}

/// Parse an optional stored value with one of the domain parsers.
pub fn parse_opt<T>(
    column: &str,
    raw: Option<&str>,
    parser: impl FnOnce(&str) -> Result<T, ValidationError>,
) -> Result<Option<T>, StoreError> {
    raw.map(|r| parse(column, r, parser)).transpose()
}

pub fn ttl_micros(ttl: Duration) -> i64 {
    i64::try_from(ttl.min(MAX_TTL).as_micros()).unwrap_or(i64::MAX)
}

pub fn attempts_to_db(attempts: u32) -> Result<i32, StoreError> {
    i32::try_from(attempts)
        .map_err(|_| StoreError::Other("dispatch_attempts is out of range".to_owned()))
}

pub fn attempts_from_db(attempts: i32) -> Result<u32, StoreError> {
    u32::try_from(attempts).map_err(|_| corrupt("calls.dispatch_attempts", "negative"))
}

pub fn limit(limit: u32) -> i64 {
    i64::from(limit)
}

fn one_of<T: Copy>(
    column: &str,
    raw: &str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, StoreError> {
    all.iter()
        .copied()
        .find(|v| name(*v) == raw)
        .ok_or_else(|| corrupt(column, "unknown value"))
}

pub fn integration_status_str(status: IntegrationStatus) -> &'static str {
    match status {
        IntegrationStatus::Active => "active",
        IntegrationStatus::Disabled => "disabled",
    }
}

pub fn parse_integration_status(raw: &str) -> Result<IntegrationStatus, StoreError> {
    one_of(
        "integrations.status",
        raw,
        &[IntegrationStatus::Active, IntegrationStatus::Disabled],
        integration_status_str,
    )
}

pub fn parse_connection_status(raw: &str) -> Result<ConnectionStatus, StoreError> {
    one_of(
        "number_connections.status",
        raw,
        &[
            ConnectionStatus::Pending,
            ConnectionStatus::Connected,
            ConnectionStatus::Failed,
            ConnectionStatus::Disconnected,
        ],
        ConnectionStatus::as_str,
    )
}

pub fn parse_trunk_strategy(raw: &str) -> Result<TrunkStrategy, StoreError> {
    one_of(
        "number_connections.trunk_strategy",
        raw,
        &[TrunkStrategy::Shared, TrunkStrategy::Dedicated],
        TrunkStrategy::as_str,
    )
}

pub fn parse_call_status(raw: &str) -> Result<CallStatus, StoreError> {
    one_of(
        "calls.status",
        raw,
        &[
            CallStatus::Ringing,
            CallStatus::Active,
            CallStatus::Ended,
            CallStatus::Unrouted,
        ],
        CallStatus::as_str,
    )
}

pub fn parse_dispatch_status(raw: &str) -> Result<DispatchStatus, StoreError> {
    one_of(
        "calls.dispatch_status",
        raw,
        &[
            DispatchStatus::None,
            DispatchStatus::Claimed,
            DispatchStatus::Dispatched,
            DispatchStatus::Failed,
            DispatchStatus::ByRule,
            DispatchStatus::GaveUp,
            DispatchStatus::Cancelled,
        ],
        DispatchStatus::as_str,
    )
}

pub fn parse_audit_action(raw: &str) -> Result<AuditAction, StoreError> {
    AuditAction::parse(raw).ok_or_else(|| corrupt("audit_events.action", "unknown value"))
}

/// The voice webhook's candidates, one per integration: the first row of each (the stores
/// order a customer's connections of the number most recently updated first).
pub fn one_candidate_per_integration(rows: Vec<VoiceRouteCandidate>) -> Vec<VoiceRouteCandidate> {
    let mut out: Vec<VoiceRouteCandidate> = Vec::new();
    for c in rows {
        if out.iter().all(|o| o.integration_id != c.integration_id) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_enum_name_parses_back() {
        for s in [IntegrationStatus::Active, IntegrationStatus::Disabled] {
            assert_eq!(
                parse_integration_status(integration_status_str(s)).unwrap(),
                s
            );
        }
        for s in [
            DispatchStatus::None,
            DispatchStatus::Claimed,
            DispatchStatus::Dispatched,
            DispatchStatus::Failed,
            DispatchStatus::ByRule,
            DispatchStatus::GaveUp,
            DispatchStatus::Cancelled,
        ] {
            assert_eq!(parse_dispatch_status(s.as_str()).unwrap(), s);
            // The stored names are the domain's serde names, so JSON and SQL agree.
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn unknown_names_are_corrupt_without_echoing_the_value() {
        let err = parse_call_status("+15551234567").unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        assert!(!err.to_string().contains("5551234567"), "{err}");
    }

    #[test]
    fn ttl_is_clamped() {
        assert_eq!(ttl_micros(Duration::from_millis(1500)), 1_500_000);
        assert_eq!(ttl_micros(Duration::MAX), ttl_micros(MAX_TTL));
    }
}
