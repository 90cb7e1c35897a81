//! The two pieces of judgement the benchmarks make: "dispatches made == distinct calls"
//! (any other count is a bug, not a figure) and how many upstream calls of a connect
//! happened one after another (reconstructed from when each request arrived at the
//! emulator and when it was answered).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// The dispatch count of one run, checked call by call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DispatchCheck {
    /// Distinct calls (SIP `participant_joined` rooms) the run delivered.
    pub distinct_calls: usize,
    /// Dispatches LiveKit holds for those rooms, in total.
    pub dispatches: usize,
    /// Rooms of the run without a dispatch.
    pub missing: Vec<String>,
    /// Rooms of the run with more than one dispatch, and how many.
    pub duplicated: Vec<(String, usize)>,
    /// Rooms with dispatches that the run never called (should be impossible).
    pub unexpected: Vec<String>,
}

impl DispatchCheck {
    pub fn ok(&self) -> bool {
        self.missing.is_empty()
            && self.duplicated.is_empty()
            && self.unexpected.is_empty()
            && self.dispatches == self.distinct_calls
    }
}

/// Compare the rooms a run called (`expected`) with the dispatches per room LiveKit
/// recorded (`per_room`, rooms of this run only: other rooms are the caller's business).
pub fn check_dispatches(
    expected: &BTreeSet<String>,
    per_room: &BTreeMap<String, usize>,
) -> DispatchCheck {
    let mut missing = Vec::new();
    let mut duplicated = Vec::new();
    for room in expected {
        match per_room.get(room).copied().unwrap_or(0) {
            0 => missing.push(room.clone()),
            1 => {}
            n => duplicated.push((room.clone(), n)),
        }
    }
    let unexpected = per_room
        .iter()
        .filter(|(room, n)| **n > 0 && !expected.contains(*room))
        .map(|(room, _)| room.clone())
        .collect();
    DispatchCheck {
        distinct_calls: expected.len(),
        dispatches: per_room.values().sum(),
        missing,
        duplicated,
        unexpected,
    }
}

/// One upstream request: when it arrived and when it was answered, in milliseconds from
/// the start of the operation that caused it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interval {
    pub system: String,
    pub call: String,
    pub write: bool,
    pub start_ms: f64,
    pub end_ms: f64,
}

/// The longest chain of requests each of which started after the previous one ended: the
/// number of round trips that happened one after another. Intervals still open (no end)
/// must be left out by the caller.
pub fn sequential_round_trips(intervals: &[Interval]) -> usize {
    let mut by_end: Vec<&Interval> = intervals.iter().collect();
    by_end.sort_by(|a, b| a.end_ms.total_cmp(&b.end_ms));
    // chain[i]: the longest chain ending with by_end[i].
    let mut chain = vec![0usize; by_end.len()];
    for i in 0..by_end.len() {
        let before = (0..i)
            .filter(|&j| by_end[j].end_ms <= by_end[i].start_ms)
            .map(|j| chain[j])
            .max()
            .unwrap_or(0);
        chain[i] = before + 1;
    }
    chain.into_iter().max().unwrap_or(0)
}

/// The most requests in flight at once.
pub fn max_in_flight(intervals: &[Interval]) -> usize {
    // Ends sort before starts at the same instant: back-to-back is not overlap.
    let mut edges: Vec<(f64, i32)> = intervals
        .iter()
        .flat_map(|i| [(i.start_ms, 1), (i.end_ms, -1)])
        .collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut now = 0i32;
    let mut most = 0i32;
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or(0)
}

/// How long at least one request was in flight, in milliseconds.
pub fn busy_ms(intervals: &[Interval]) -> f64 {
    let mut spans: Vec<(f64, f64)> = intervals.iter().map(|i| (i.start_ms, i.end_ms)).collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for (s, e) in spans {
        current = match current {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((cs, ce)) = current {
        total += ce - cs;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rooms(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
        pairs.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect()
    }

    #[test]
    fn one_dispatch_per_call_passes() {
        let c = check_dispatches(&rooms(&["a", "b"]), &counts(&[("a", 1), ("b", 1)]));
        assert!(c.ok(), "{c:?}");
        assert_eq!((c.distinct_calls, c.dispatches), (2, 2));
    }

    #[test]
    fn a_missing_or_doubled_dispatch_fails_even_when_the_totals_agree() {
        let c = check_dispatches(&rooms(&["a", "b"]), &counts(&[("a", 2), ("b", 0)]));
        assert_eq!(c.dispatches, 2);
        assert!(!c.ok());
        assert_eq!(c.missing, ["b"]);
        assert_eq!(c.duplicated, [("a".to_owned(), 2)]);
    }

    #[test]
    fn a_dispatch_to_a_room_nobody_called_fails() {
        let c = check_dispatches(&rooms(&["a"]), &counts(&[("a", 1), ("zz", 1)]));
        assert!(!c.ok());
        assert_eq!(c.unexpected, ["zz"]);
        let empty = check_dispatches(&rooms(&[]), &counts(&[("q", 0)]));
        assert!(
            empty.ok(),
            "a room listed with no dispatch is not a dispatch"
        );
    }

    fn iv(start: f64, end: f64) -> Interval {
        Interval {
            system: "twilio".to_owned(),
            call: "x".to_owned(),
            write: false,
            start_ms: start,
            end_ms: end,
        }
    }

    #[test]
    fn strictly_sequential_calls_are_counted_one_by_one() {
        let calls = [iv(0.0, 100.0), iv(100.0, 200.0), iv(201.0, 301.0)];
        assert_eq!(sequential_round_trips(&calls), 3);
        assert_eq!(max_in_flight(&calls), 1);
        assert!((busy_ms(&calls) - 300.0).abs() < 1e-9);
    }

    #[test]
    fn concurrent_branches_count_once() {
        // Two branches of two calls each, side by side, then one more call.
        let calls = [
            iv(0.0, 100.0),
            iv(1.0, 101.0),
            iv(101.0, 201.0),
            iv(102.0, 202.0),
            iv(203.0, 303.0),
        ];
        assert_eq!(sequential_round_trips(&calls), 3);
        assert_eq!(max_in_flight(&calls), 2);
        assert!((busy_ms(&calls) - 302.0).abs() < 1e-9);
    }

    #[test]
    fn a_long_call_beside_short_ones() {
        // One slow call spans three short sequential ones.
        let calls = [
            iv(0.0, 350.0),
            iv(0.0, 100.0),
            iv(110.0, 210.0),
            iv(220.0, 320.0),
        ];
        assert_eq!(sequential_round_trips(&calls), 3);
        assert_eq!(max_in_flight(&calls), 2);
        assert_eq!(sequential_round_trips(&[]), 0);
        assert_eq!(max_in_flight(&[]), 0);
        assert!(busy_ms(&[]).abs() < f64::EPSILON);
    }
}
