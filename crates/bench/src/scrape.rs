//! Histograms read from the servers' `/metrics` (Prometheus text format), for figures the
//! bench cannot see from outside: `trunkline_time_to_dispatch_seconds` (webhook receipt to
//! LiveKit's answer settling the agent dispatch) and its part spent waiting for LiveKit,
//! `trunkline_time_to_dispatch_livekit_seconds`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The time-to-dispatch histogram's name.
pub const TIME_TO_DISPATCH: &str = "trunkline_time_to_dispatch_seconds";
/// The histogram of its part spent waiting for LiveKit's answers.
pub const TIME_TO_DISPATCH_LIVEKIT: &str = "trunkline_time_to_dispatch_livekit_seconds";

/// Cumulative bucket counts by upper bound (seconds; `f64::INFINITY` for `+Inf`), summed over
/// every label set (outcomes) of `metric`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets(pub Vec<(f64, f64)>);

/// The buckets of `metric` in one `/metrics` answer. Empty when the metric is absent (a
/// binary that does not have it, or nothing recorded yet).
pub fn buckets(text: &str, metric: &str) -> Buckets {
    let prefix = format!("{metric}_bucket{{");
    let mut by_bound: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once('}') else {
            continue;
        };
        let Some(le) = labels
            .split(',')
            .find_map(|l| l.trim().strip_prefix("le=\""))
            .and_then(|l| l.strip_suffix('"'))
        else {
            continue;
        };
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            match le.parse::<f64>() {
                Ok(b) => b,
                Err(_) => continue,
            }
        };
        let Ok(count) = value.trim().parse::<f64>() else {
            continue;
        };
        let e = by_bound.entry(bound.to_bits()).or_insert((bound, 0.0));
        e.1 += count;
    }
    let mut v: Vec<(f64, f64)> = by_bound.into_values().collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    Buckets(v)
}

impl Buckets {
    /// Bucket by bucket sum (several instances).
    #[must_use]
    pub fn plus(&self, other: &Buckets) -> Buckets {
        merge(self, other, 1.0)
    }

    /// What was recorded between `before` and `self`.
    #[must_use]
    pub fn minus(&self, before: &Buckets) -> Buckets {
        merge(self, before, -1.0)
    }

    pub fn count(&self) -> f64 {
        self.0.last().map_or(0.0, |b| b.1)
    }

    /// The `q` quantile in milliseconds, interpolated linearly within its bucket (as
    /// Prometheus' `histogram_quantile`); the highest finite bound when it falls in `+Inf`.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for &(bound, cumulative) in &self.0 {
            if cumulative >= rank {
                if bound.is_infinite() {
                    return Some(lower * 1000.0);
                }
                let inside = cumulative - below;
                let share = if inside > 0.0 {
                    (rank - below) / inside
                } else {
                    0.0
                };
                return Some((lower + (bound - lower) * share) * 1000.0);
            }
            lower = bound;
            below = cumulative;
        }
        Some(lower * 1000.0)
    }

    /// count, p50 and p99 (ms), for the raw file.
    pub fn summary(&self) -> Value {
        json!({
            "count": self.count(),
            "p50_ms": self.quantile_ms(0.5).map(crate::stats::round3),
            "p99_ms": self.quantile_ms(0.99).map(crate::stats::round3),
        })
    }
}

fn merge(a: &Buckets, b: &Buckets, sign: f64) -> Buckets {
    let mut by_bound: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for &(bound, n) in &a.0 {
        by_bound.entry(bound.to_bits()).or_insert((bound, 0.0)).1 += n;
    }
    for &(bound, n) in &b.0 {
        by_bound.entry(bound.to_bits()).or_insert((bound, 0.0)).1 += sign * n;
    }
    let mut v: Vec<(f64, f64)> = by_bound.into_values().collect();
    v.sort_by(|x, y| x.0.total_cmp(&y.0));
    Buckets(v)
}

/// The time-to-dispatch histograms of every instance, summed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DispatchTimes {
    /// Webhook receipt to LiveKit's answer.
    pub total: Buckets,
    /// The part spent waiting for LiveKit (empty for builds without it).
    pub livekit: Buckets,
}

impl DispatchTimes {
    /// What was recorded between `before` and `self`.
    #[must_use]
    pub fn minus(&self, before: &DispatchTimes) -> DispatchTimes {
        DispatchTimes {
            total: self.total.minus(&before.total),
            livekit: self.livekit.minus(&before.livekit),
        }
    }
}

/// The time-to-dispatch histograms of every instance, summed (empty when a server does not
/// answer or has no such metric).
pub async fn time_to_dispatch(client: &reqwest::Client, base_urls: &[String]) -> DispatchTimes {
    let mut sum = DispatchTimes::default();
    for base in base_urls {
        let text = match client.get(format!("{base}/metrics")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        sum.total = sum.total.plus(&buckets(&text, TIME_TO_DISPATCH));
        sum.livekit = sum.livekit.plus(&buckets(&text, TIME_TO_DISPATCH_LIVEKIT));
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE trunkline_time_to_dispatch_seconds histogram
trunkline_time_to_dispatch_seconds_bucket{outcome=\"dispatched\",le=\"0.001\"} 0
trunkline_time_to_dispatch_seconds_bucket{outcome=\"dispatched\",le=\"0.002\"} 50
trunkline_time_to_dispatch_seconds_bucket{outcome=\"dispatched\",le=\"0.004\"} 98
trunkline_time_to_dispatch_seconds_bucket{outcome=\"dispatched\",le=\"+Inf\"} 100
trunkline_time_to_dispatch_seconds_bucket{outcome=\"failed\",le=\"0.001\"} 0
trunkline_time_to_dispatch_seconds_bucket{outcome=\"failed\",le=\"0.002\"} 0
trunkline_time_to_dispatch_seconds_bucket{outcome=\"failed\",le=\"0.004\"} 0
trunkline_time_to_dispatch_seconds_bucket{outcome=\"failed\",le=\"+Inf\"} 0
trunkline_time_to_dispatch_seconds_sum{outcome=\"dispatched\"} 0.2
other_bucket{le=\"0.001\"} 7
";

    #[test]
    fn buckets_are_summed_over_outcomes_and_quantiles_interpolated() {
        let b = buckets(TEXT, TIME_TO_DISPATCH);
        assert!((b.count() - 100.0).abs() < f64::EPSILON);
        assert_eq!(b.quantile_ms(0.5), Some(2.0));
        // rank 25 of the 50 in (1, 2] ms: halfway.
        assert_eq!(b.quantile_ms(0.25), Some(1.5));
        // rank 99: past 0.004 → the +Inf bucket reports the highest finite bound.
        assert_eq!(b.quantile_ms(0.99), Some(4.0));
    }

    #[test]
    fn a_run_is_the_difference_of_two_scrapes() {
        let after = buckets(TEXT, TIME_TO_DISPATCH);
        let run = after.minus(&after);
        assert!((run.count() - 0.0).abs() < f64::EPSILON);
        assert_eq!(run.quantile_ms(0.5), None);
        assert!((buckets("", TIME_TO_DISPATCH).count() - 0.0).abs() < f64::EPSILON);
        assert!((after.plus(&after).count() - 200.0).abs() < f64::EPSILON);
    }
}
