// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! Property tests of the stats counters and the latency histogram behind `stats()`.
//!
//! - Recording never panics, for any duration (zero to `Duration::MAX`).
//! - count and max are exact; p50 <= p90 <= p99 <= max.
//! - A percentile is never optimistic: it is at least the true percentile of the samples and at
//!   most the upper bound of its bucket, 25 % (+1 µs) above it — for any latency below 2^40 µs
//!   (12.7 days), the histogram's range.
//! - Concurrent recording from many threads loses nothing.
//!
//! Failures are persisted in proptest-regressions/proptest_stats.txt and replayed first.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use qrpush_core::stats::Stats;

#[path = "common/proptest_config.rs"]
mod proptest_config;

fn config(cases: u32) -> ProptestConfig {
    proptest_config::config("proptest-regressions/proptest_stats.txt", cases)
}

const RANGE_US: u64 = 1 << 40;

fn latency_us() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..4,
        0u64..2_000,
        0u64..1_000_000,
        0u64..RANGE_US,
        (0u32..40).prop_map(|p| 1u64 << p),
        (1u32..40).prop_map(|p| (1u64 << p) - 1),
    ]
}

fn true_percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((sorted.len() as f64) * p).ceil().max(1.0) as usize;
    sorted[rank - 1]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn percentiles_are_exact_to_a_bucket(samples in proptest::collection::vec(latency_us(), 1..400)) {
        let stats = Stats::default();
        for us in &samples {
            stats.record_success(1, Duration::from_micros(*us));
        }
        let l = stats.latency();
        let mut sorted = samples.clone();
        sorted.sort_unstable();
        prop_assert_eq!(l.count, samples.len() as u64);
        prop_assert_eq!(l.max_us, *sorted.last().unwrap());
        prop_assert!(l.p50_us <= l.p90_us && l.p90_us <= l.p99_us && l.p99_us <= l.max_us, "{:?}", l);
        for (p, got) in [(0.5, l.p50_us), (0.9, l.p90_us), (0.99, l.p99_us)] {
            let truth = true_percentile(&sorted, p);
            prop_assert!(got >= truth, "p{} = {} is optimistic: the samples' is {} ({:?})", p * 100.0, got, truth, l);
            let bound = truth + truth / 4 + 1;
            prop_assert!(got <= bound, "p{} = {} is more than a bucket above {} ({:?})", p * 100.0, got, truth, l);
        }
        prop_assert_eq!(stats.published.load(std::sync::atomic::Ordering::Relaxed), samples.len() as u64);
    }

    /// Any duration at all, and any message count: no panic (debug builds check overflow), and
    /// the summary stays ordered.
    #[test]
    fn recording_any_duration_never_panics(
        samples in proptest::collection::vec(
            prop_oneof![
                any::<u64>().prop_map(Duration::from_micros),
                (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
                Just(Duration::MAX),
                Just(Duration::ZERO),
                Just(Duration::from_nanos(999)),
            ],
            1..50,
        ),
        messages in any::<u64>(),
    ) {
        let stats = Stats::default();
        for d in &samples {
            stats.record_success(messages % 1000, *d);
        }
        stats.record_failure(messages, "failure");
        let l = stats.latency();
        prop_assert_eq!(l.count, samples.len() as u64);
        prop_assert!(l.p50_us <= l.p90_us && l.p90_us <= l.p99_us && l.p99_us <= l.max_us, "{:?}", l);
        let max = samples.iter().map(|d| d.as_micros().min(u64::MAX as u128) as u64).max().unwrap();
        prop_assert_eq!(l.max_us, max);
        stats.reset();
        prop_assert_eq!(stats.latency().count, 0);
    }
}

#[test]
fn concurrent_recording_loses_nothing() {
    const THREADS: u64 = 8;
    const EACH: u64 = 20_000;
    let stats = Arc::new(Stats::default());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let stats = Arc::clone(&stats);
            std::thread::spawn(move || {
                for i in 0..EACH {
                    stats.record_success(1, Duration::from_micros((t * EACH + i) % 5_000));
                    if i % 1000 == 0 {
                        stats.record_failure(1, "x");
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let l = stats.latency();
    assert_eq!(l.count, THREADS * EACH);
    assert_eq!(l.max_us, 4_999);
    assert_eq!(
        stats.published.load(std::sync::atomic::Ordering::Relaxed),
        THREADS * EACH
    );
    assert_eq!(
        stats.failed.load(std::sync::atomic::Ordering::Relaxed),
        THREADS * EACH / 1000
    );
}
