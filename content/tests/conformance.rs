//! Runs the reusable conformance suite (`dist_content::testsuite`) against `LocalStore`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dist_content::{LocalStore, testsuite};

#[tokio::test]
async fn local_store_passes_the_content_conformance_suite() {
    let results = testsuite::run_all(|| async {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path().join("content")).unwrap();
        (store, dir)
    })
    .await;
    assert_eq!(results.len(), testsuite::CHECKS.len());
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(
        failures.is_empty(),
        "failed checks:\n{}",
        failures.join("\n")
    );
}
