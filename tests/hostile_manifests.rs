//! Hostile manifests and indexes from a scripted registry: oversized, endless, malformed,
//! nested deeply, with digests in headers that disagree with bodies, and descriptors with
//! malformed digests or absurd sizes. Every case holds `dist pull` to the bounds in
//! `support::assert_contained`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use dist_test_support::{
    Body, HostileRegistry, OCI_INDEX, OCI_MANIFEST, OciLayout, Response, sha256,
};
use serde_json::json;
use support::{Bounds, desc_json, index_bytes, manifest_bytes, pull_contained};

const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

fn bounds(legit: u64) -> Bounds {
    Bounds {
        legit,
        slack: 1 << 20,
        budget: Duration::from_secs(20),
    }
}

/// Pulls `repo:v1` from `reg` and asserts the pull failed within bounds.
fn pull_fails(case: &str, reg: &HostileRegistry, repo: &str, legit: u64) -> support::Dist {
    let (dist, f, ok) = pull_contained(
        case,
        &format!("{}/{repo}:v1", reg.host()),
        &[],
        bounds(legit),
    );
    assert!(!ok, "{case}: the pull succeeded:\n{}", f.stderr_text());
    assert_eq!(
        dist.committed_snapshots(),
        0,
        "{case}: a snapshot was committed"
    );
    dist
}

#[test]
fn an_oversized_manifest_is_refused() {
    let reg = HostileRegistry::start().unwrap();
    // A valid start, then 64 MiB of spaces (honestly announced, generated as sent).
    let prefix = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json""#;
    let d = sha256(b"big");
    let big = Response::with(
        200,
        Body::Sized {
            prefix: prefix.to_vec(),
            fill: b' ',
            len: 64 << 20,
        },
    )
    .header("Content-Type", OCI_MANIFEST)
    .header("Docker-Content-Digest", d.clone());
    reg.route("/v2/big/manifests/v1", big.clone());
    reg.route(&format!("/v2/big/manifests/{d}"), big);
    pull_fails("64 MiB manifest", &reg, "big", 0);
}

#[test]
fn an_endless_manifest_is_refused() {
    let reg = HostileRegistry::start().unwrap();
    let endless = Response::with(200, Body::Endless { fill: b' ' })
        .header("Content-Type", OCI_MANIFEST)
        .header("Docker-Content-Digest", sha256(b"endless"));
    reg.route("/v2/endless/manifests/v1", endless.clone());
    reg.route(
        &format!("/v2/endless/manifests/{}", sha256(b"endless")),
        endless,
    );
    pull_fails("endless manifest", &reg, "endless", 0);
}

#[test]
fn an_endless_index_whose_length_is_absurd_is_refused() {
    let reg = HostileRegistry::start().unwrap();
    let d = sha256(b"absurd");
    let absurd = Response::with(
        200,
        Body::Declared {
            bytes: b"{\"schemaVersion\":2,\"manifests\":[".to_vec(),
            declared: u64::MAX.to_string(),
        },
    )
    .header("Content-Type", OCI_INDEX)
    .header("Docker-Content-Digest", d.clone());
    reg.route("/v2/absurd/manifests/v1", absurd.clone());
    reg.route(&format!("/v2/absurd/manifests/{d}"), absurd);
    pull_fails("index with Content-Length u64::MAX", &reg, "absurd", 0);
}

#[test]
fn malformed_manifests_and_indexes_are_refused() {
    let garbage: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "truncated manifest",
            OCI_MANIFEST,
            br#"{"schemaVersion":2,"layers":["#.to_vec(),
        ),
        (
            "binary manifest",
            OCI_MANIFEST,
            vec![0xff, 0x00, 0xfe, 0x7b],
        ),
        (
            "manifest with wrong types",
            OCI_MANIFEST,
            br#"{"schemaVersion":"2","config":7,"layers":{}}"#.to_vec(),
        ),
        (
            "schema version 99",
            OCI_MANIFEST,
            br#"{"schemaVersion":99,"config":{},"layers":[]}"#.to_vec(),
        ),
        (
            "index with wrong types",
            OCI_INDEX,
            br#"{"schemaVersion":2,"manifests":[{"digest":5,"size":"x"}]}"#.to_vec(),
        ),
        (
            "index that is a manifest",
            OCI_INDEX,
            manifest_bytes(desc_json(CONFIG, &sha256(b"c"), json!(1)), vec![]),
        ),
        (
            "manifest nested 100000 arrays deep",
            OCI_MANIFEST,
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        ),
        ("empty index", OCI_INDEX, index_bytes(vec![])),
    ];
    support::each_case(garbage, |(case, media_type, body)| {
        let reg = HostileRegistry::start().unwrap();
        let digest = reg.manifest("bad", "v1", media_type, body);
        reg.manifest("bad", &digest, media_type, body);
        pull_fails(case, &reg, "bad", body.len() as u64);
    });
}

#[test]
fn an_index_nested_deeply_is_refused_or_resolved_within_bounds() {
    let reg = HostileRegistry::start().unwrap();
    let layer = OciLayout::tar_gz(&[("hello.txt", b"hello\n")]).unwrap();
    let served = reg.image("deep", "inner", &[layer], None).unwrap();
    let mut legit = served.legit_bytes;
    let mut child = desc_json(
        OCI_MANIFEST,
        &served.manifest_digest,
        json!(served.manifest.len()),
    );
    for _ in 0..256 {
        let index = index_bytes(vec![child]);
        legit += index.len() as u64;
        let d = reg.manifest("deep", &sha256(&index), OCI_INDEX, &index);
        child = desc_json(OCI_INDEX, &d, json!(index.len()));
    }
    let index = index_bytes(vec![child]);
    legit += index.len() as u64;
    let d = reg.manifest("deep", "v1", OCI_INDEX, &index);
    reg.manifest("deep", &d, OCI_INDEX, &index);
    let (dist, f, ok) = pull_contained(
        "index nested 257 deep",
        &format!("{}/deep:v1", reg.host()),
        &[],
        bounds(legit),
    );
    if !ok {
        assert_eq!(dist.committed_snapshots(), 0, "{}", f.stderr_text());
    }
}

#[test]
fn a_digest_header_that_disagrees_with_the_body_commits_nothing() {
    let reg = HostileRegistry::start().unwrap();
    let layer = OciLayout::tar_gz(&[("hello.txt", b"hello\n")]).unwrap();
    let served = reg.image("liar", "real", &[layer], None).unwrap();
    // The tag claims another digest; fetched by that digest, the body is the real one.
    let claimed = sha256(b"something else");
    for path in [
        "/v2/liar/manifests/v1".to_string(),
        format!("/v2/liar/manifests/{claimed}"),
    ] {
        reg.route(
            &path,
            Response::ok(served.manifest.clone())
                .header("Content-Type", OCI_MANIFEST)
                .header("Docker-Content-Digest", claimed.clone()),
        );
    }
    let dist = pull_fails(
        "Docker-Content-Digest disagrees",
        &reg,
        "liar",
        served.legit_bytes,
    );
    assert!(
        dist.verified_blobs()
            .iter()
            .all(|(p, _)| !p.ends_with(&claimed[7..])),
        "a blob was committed under the claimed digest"
    );
}

#[test]
fn a_manifest_whose_body_does_not_match_its_digest_is_refused() {
    let reg = HostileRegistry::start().unwrap();
    let layer = OciLayout::tar_gz(&[("hello.txt", b"hello\n")]).unwrap();
    let served = reg.image("swap", "v1", &[layer], None).unwrap();
    // By digest, the registry serves a different (valid) manifest.
    let other = manifest_bytes(desc_json(CONFIG, &served.config_digest, json!(2)), vec![]);
    reg.route(
        &format!("/v2/swap/manifests/{}", served.manifest_digest),
        Response::ok(other)
            .header("Content-Type", OCI_MANIFEST)
            .header("Docker-Content-Digest", served.manifest_digest.clone()),
    );
    pull_fails("manifest body swapped", &reg, "swap", served.legit_bytes);
}

#[test]
fn malformed_digests_in_descriptors_are_refused() {
    let digests = [
        "sha256:xyz",
        "sha256:../../../../etc/passwd",
        "sha256/../../etc/passwd",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "SHA256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
        "sha256:",
        "",
    ];
    support::each_case(digests, |bad| {
        let reg = HostileRegistry::start().unwrap();
        let config = dist_test_support::image_json(&[], None).unwrap().0;
        let config_digest = reg.blob("baddigest", &config);
        let manifest = manifest_bytes(
            desc_json(CONFIG, &config_digest, json!(config.len())),
            vec![desc_json(LAYER_GZIP, bad, json!(32))],
        );
        let d = reg.manifest("baddigest", "v1", OCI_MANIFEST, &manifest);
        reg.manifest("baddigest", &d, OCI_MANIFEST, &manifest);
        let legit = (config.len() + manifest.len()) as u64;
        pull_fails(&format!("layer digest {bad:?}"), &reg, "baddigest", legit);
    });
}

#[test]
fn absurd_descriptor_sizes_are_refused() {
    let sizes = [
        json!(u64::MAX),
        json!(i64::MAX),
        json!(-1),
        json!(1.5),
        json!("12"),
    ];
    support::each_case(sizes, |size| {
        let reg = HostileRegistry::start().unwrap();
        let (layer, diff_id) = OciLayout::tar_gz(&[("hello.txt", b"hello\n")]).unwrap();
        let layer_digest = reg.blob("size", &layer);
        let config = dist_test_support::image_json(&[(layer.clone(), diff_id)], None)
            .unwrap()
            .0;
        let config_digest = reg.blob("size", &config);
        let manifest = manifest_bytes(
            desc_json(CONFIG, &config_digest, json!(config.len())),
            vec![desc_json(LAYER_GZIP, &layer_digest, size.clone())],
        );
        let d = reg.manifest("size", "v1", OCI_MANIFEST, &manifest);
        reg.manifest("size", &d, OCI_MANIFEST, &manifest);
        let legit = (config.len() + manifest.len()) as u64;
        pull_fails(&format!("layer size {size}"), &reg, "size", legit);
    });
}

#[test]
fn an_index_entry_with_an_absurd_size_is_refused() {
    support::each_case([json!(u64::MAX), json!(i64::MAX)], |size| {
        let reg = HostileRegistry::start().unwrap();
        let layer = OciLayout::tar_gz(&[("hello.txt", b"hello\n")]).unwrap();
        let served = reg.image("idxsize", "inner", &[layer], None).unwrap();
        let mut entry = desc_json(OCI_MANIFEST, &served.manifest_digest, size.clone());
        entry["platform"] = json!({"os": "linux", "architecture": dist_test_support::host_arch()});
        let index = index_bytes(vec![entry]);
        let d = reg.manifest("idxsize", "v1", OCI_INDEX, &index);
        reg.manifest("idxsize", &d, OCI_INDEX, &index);
        pull_fails(
            &format!("index entry size {size}"),
            &reg,
            "idxsize",
            served.legit_bytes + index.len() as u64,
        );
    });
}

#[test]
fn a_manifest_listing_tens_of_thousands_of_missing_layers_fails_within_bounds() {
    let reg = HostileRegistry::start().unwrap();
    let config = dist_test_support::image_json(&[], None).unwrap().0;
    let config_digest = reg.blob("many", &config);
    let layers = (0..30_000u32)
        .map(|i| desc_json(LAYER_GZIP, &sha256(&i.to_le_bytes()), json!(1000)))
        .collect();
    let manifest = manifest_bytes(
        desc_json(CONFIG, &config_digest, json!(config.len())),
        layers,
    );
    let d = reg.manifest("many", "v1", OCI_MANIFEST, &manifest);
    reg.manifest("many", &d, OCI_MANIFEST, &manifest);
    pull_fails(
        "30000 missing layers",
        &reg,
        "many",
        (config.len() + manifest.len()) as u64,
    );
    let blob_requests = reg
        .requests()
        .iter()
        .filter(|r| r.path().contains("/blobs/"))
        .count();
    assert!(
        blob_requests < 1000,
        "{blob_requests} blob requests after the first 404"
    );
}

#[test]
fn an_index_of_tens_of_thousands_of_foreign_platforms_fails_within_bounds() {
    let reg = HostileRegistry::start().unwrap();
    let manifests = (0..30_000u32)
        .map(|i| {
            let mut d = desc_json(OCI_MANIFEST, &sha256(&i.to_le_bytes()), json!(500));
            d["platform"] = json!({"os": "plan9", "architecture": format!("arch{i}")});
            d
        })
        .collect();
    let index = index_bytes(manifests);
    let d = reg.manifest("foreign", "v1", OCI_INDEX, &index);
    reg.manifest("foreign", &d, OCI_INDEX, &index);
    pull_fails(
        "30000 foreign platforms",
        &reg,
        "foreign",
        index.len() as u64,
    );
}
