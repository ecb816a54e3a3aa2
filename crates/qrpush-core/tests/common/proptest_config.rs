//! The proptest configuration every `proptest_*.rs` file uses, in one place.

use proptest::prelude::ProptestConfig;
use proptest::test_runner::FileFailurePersistence;

/// `cases` per property (`PROPTEST_CASES=N` runs a deeper search than `cargo test`'s default),
/// with failures persisted in `regressions` (under proptest-regressions/) and replayed first.
pub fn config(regressions: &'static str, cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(cases),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        ..ProptestConfig::default()
    }
}
