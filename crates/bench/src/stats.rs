//! Latency histograms (microseconds, `hdrhistogram`) and their summaries, and the small
//! arithmetic the reports need (rates, ratios, medians).

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency a histogram holds: anything slower is clamped to it (and the
/// run would have failed its own time limit long before).
const MAX_MICROS: u64 = 120_000_000;

/// Latencies in microseconds, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// # Panics
    /// Never: the bounds are constants that `hdrhistogram` accepts.
    pub fn new() -> Self {
        Self(Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds"))
    }

    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        // In bounds by construction; `saturating_record` clamps anyway.
        self.0.saturating_record(micros);
    }

    /// Add every value of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at quantile `q` (0..=1), in milliseconds; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        micros_to_ms(self.0.value_at_quantile(q.clamp(0.0, 1.0)))
    }

    pub fn summary(&self) -> Summary {
        Summary {
            count: self.0.len(),
            mean_ms: if self.0.is_empty() {
                0.0
            } else {
                round3(self.0.mean() / 1000.0)
            },
            p50_ms: round3(self.quantile_ms(0.50)),
            p90_ms: round3(self.quantile_ms(0.90)),
            p99_ms: round3(self.quantile_ms(0.99)),
            p999_ms: round3(self.quantile_ms(0.999)),
            max_ms: if self.0.is_empty() {
                0.0
            } else {
                round3(micros_to_ms(self.0.max()))
            },
        }
    }
}

/// The figures of a latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

#[allow(clippy::cast_precision_loss)] // microseconds below 2^53
fn micros_to_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Round to three decimals (the JSON stays readable; the histograms are 3 digits anyway).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `count` per second over `elapsed`; 0 for an empty interval.
#[allow(clippy::cast_precision_loss)] // counts far below 2^53
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        0.0
    } else {
        count as f64 / secs
    }
}

/// `ours / ceiling`; `None` when the ceiling is not positive.
pub fn ratio(ours: f64, ceiling: f64) -> Option<f64> {
    (ceiling > 0.0).then(|| ours / ceiling)
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        f64::midpoint(v[mid - 1], v[mid])
    } else {
        v[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_of_one_to_a_hundred_milliseconds() {
        let mut l = Latencies::new();
        for i in 1..=100 {
            l.record(ms(i));
        }
        let s = l.summary();
        assert_eq!(s.count, 100);
        // 3 significant digits: within 0.1% of the exact order statistic.
        assert!((s.p50_ms - 50.0).abs() <= 0.05, "{s:?}");
        assert!((s.p90_ms - 90.0).abs() <= 0.09, "{s:?}");
        assert!((s.p99_ms - 99.0).abs() <= 0.1, "{s:?}");
        assert!((s.max_ms - 100.0).abs() <= 0.1, "{s:?}");
        assert!((s.mean_ms - 50.5).abs() <= 0.06, "{s:?}");
    }

    #[test]
    fn a_single_slow_request_is_the_max_and_not_the_p99() {
        let mut l = Latencies::new();
        for _ in 0..999 {
            l.record(Duration::from_micros(500));
        }
        l.record(ms(40));
        let s = l.summary();
        assert!((s.p50_ms - 0.5).abs() < 0.001, "{s:?}");
        assert!((s.p99_ms - 0.5).abs() < 0.001, "{s:?}");
        assert!((s.max_ms - 40.0).abs() < 0.05, "{s:?}");
    }

    #[test]
    fn merging_adds_counts_and_keeps_extremes() {
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        a.record(ms(1));
        b.record(ms(9));
        b.record(ms(9));
        a.merge(&b);
        assert_eq!(a.len(), 3);
        assert!((a.summary().max_ms - 9.0).abs() < 0.01);
        assert!((a.quantile_ms(0.0) - 1.0).abs() < 0.01);
    }

    #[test]
    fn empty_and_out_of_range_values_do_not_panic() {
        let mut l = Latencies::new();
        assert!(l.is_empty());
        assert!(l.summary().max_ms.abs() < f64::EPSILON);
        l.record(Duration::ZERO);
        l.record(Duration::from_secs(3600));
        assert_eq!(l.len(), 2);
        assert!(l.summary().max_ms <= 120_000.0 * 1.001);
    }

    #[test]
    fn rates_ratios_and_medians() {
        assert!((rate(500, ms(250)) - 2000.0).abs() < 1e-9);
        assert!(rate(5, Duration::ZERO).abs() < f64::EPSILON);
        assert_eq!(ratio(70.0, 100.0), Some(0.7));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert!((round3(1.23456) - 1.235).abs() < 1e-12);
    }
}
