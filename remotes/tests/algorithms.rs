//! sha384 and sha512 content over the wire: blobs uploaded to a real `docker-registry`
//! under those digests are fetched and verified; a manifest resolved by a sha512 digest is
//! hashed with sha512 although the registry names it by sha256 (scripted server, as a real
//! registry cannot store a manifest under sha512); an unsupported algorithm is refused
//! with `InvalidArgument`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{collect, fault_fetcher, fault_options, fetch_all, manifest_server, resolver};
use dist_content::{Algorithm, digest_of, sha256_of};
use dist_remotes::{ErrorKind, Resolver};
use dist_test_support::{AuthMode, Registry};
use oci_spec::image::{Descriptor, Digest, MediaType};

/// Uploads `data` to `<reg>/<repo>` as one monolithic blob upload named `digest`.
async fn upload(reg: &Registry, repo: &str, data: &[u8], digest: &Digest) {
    let client = reqwest::Client::new();
    let start = client
        .post(format!("http://{}/v2/{repo}/blobs/uploads/", reg.host()))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202, "{}", reg.log());
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = client
        .put(format!("{location}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201, "{}", reg.log());
}

#[tokio::test]
async fn sha384_and_sha512_blobs_from_a_real_registry_are_fetched_and_verified() {
    let reg = Registry::start(AuthMode::None).unwrap();
    let r = resolver(&reg);
    let fetcher = r
        .fetcher(&format!("{}/test/algs", reg.host()))
        .await
        .unwrap();
    for (i, alg) in [Algorithm::Sha384, Algorithm::Sha512]
        .into_iter()
        .enumerate()
    {
        let data = common::data(100_000 + i);
        let digest = digest_of(alg, &data);
        upload(&reg, "test/algs", &data, &digest).await;
        let desc = Descriptor::new(MediaType::ImageLayerGzip, data.len() as u64, digest);
        assert_eq!(fetch_all(fetcher.as_ref(), &desc).await.unwrap(), data);
    }
}

#[tokio::test]
async fn a_manifest_resolved_by_sha512_is_hashed_with_sha512() {
    let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
    let by_sha512 = digest_of(Algorithm::Sha512, body);
    // The registry names it by its canonical sha256, in HEAD and GET alike.
    let canonical = sha256_of(body).to_string();
    let srv = manifest_server(body.to_vec(), Some(canonical.clone()), Some(canonical));
    let r = dist_remotes::DockerResolver::new(fault_options(&srv.host()));
    let (_, desc) = r
        .resolve(&format!("{}/repo@{by_sha512}", srv.host()))
        .await
        .unwrap();
    assert_eq!(*desc.digest(), by_sha512);
    assert_eq!(desc.size(), body.len() as u64);

    // And fetched by that descriptor, the sha256 header does not count against it.
    let f = fault_fetcher(fault_options(&srv.host()), &srv.host()).await;
    assert_eq!(collect(f.as_ref(), &desc, 0).await.unwrap(), body);

    // A body that is not the sha512 named is refused.
    let other = digest_of(Algorithm::Sha512, b"another manifest");
    let err = r
        .resolve(&format!("{}/repo@{other}", srv.host()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
}

#[tokio::test]
async fn fetching_by_an_unsupported_algorithm_is_an_invalid_argument() {
    let srv = manifest_server(b"{}".to_vec(), None, None);
    let f = fault_fetcher(fault_options(&srv.host()), &srv.host()).await;
    let odd: Digest = format!("blake3:{}", "0".repeat(64)).parse().unwrap();
    let desc = Descriptor::new(MediaType::ImageLayerGzip, 2, odd);
    let err = collect(f.as_ref(), &desc, 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}
