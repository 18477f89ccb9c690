//! `dist ingest` follows containerd's `WriteBlob`: content already in the store is a
//! success, and ingests of one ref at once wait for each other instead of failing (the
//! seed's `xargs -P10` pipelines).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{Dist, assert_success, sh};

fn digest_of(data: &[u8]) -> String {
    dist::content::sha256_of(data).to_string()
}

#[test]
fn ingest_of_content_already_in_the_store_exits_0_and_says_so() {
    let dist = Dist::new();
    let data = b"stored once";
    let digest = digest_of(data);
    let size = data.len().to_string();
    let expected = ["--expected-digest", &digest, "--expected-size", &size];
    let first = [&["ingest"][..], &expected, &["first"]].concat();
    assert_success(&dist.run_with(&first, Some(data)), &first);

    // With the digest known, and without any expectation (found at commit).
    let again = [&["ingest"][..], &expected, &["again"]].concat();
    for args in [&again[..], &["ingest", "plain"][..]] {
        let out = dist.run_with(args, Some(data));
        assert_success(&out, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("already in the store"), "{stderr}");
        assert!(stderr.contains(&digest), "{stderr}");
    }
    assert_eq!(dist.ok(&["list", "-q"]).trim(), digest);
    assert!(!dist.ok(&["active"]).contains("again"));
}

#[test]
fn ten_ingests_of_one_ref_at_once_all_exit_0() {
    let dist = Dist::new();
    // 3 MB of zeros each, all under one ref, as `xargs -P10` runs them.
    sh(
        &dist,
        "seq 10 | xargs -P10 -I{} sh -c 'head -c 3000000 /dev/zero | $DIST ingest one-ref'",
    );
    let zeros = vec![0u8; 3_000_000];
    assert_eq!(dist.ok(&["list", "-q"]).trim(), digest_of(&zeros));
    assert!(!dist.ok(&["active"]).contains("one-ref"));
}
