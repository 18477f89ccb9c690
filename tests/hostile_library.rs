//! The library itself (as a daemon embeds it) against the hostile registry: a resolver
//! and fetcher in-process, on a multi-thread runtime, must answer hostile input with an
//! error in bounded time and never panic the task.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use dist::remotes::{DockerResolver, HostsConfig, Resolver as _, ResolverOptions};
use dist_test_support::{
    Body, HostileRegistry, OCI_MANIFEST, OciLayout, Request, Response, sha256,
};
use futures::TryStreamExt as _;

fn resolver(reg: &HostileRegistry) -> DockerResolver {
    DockerResolver::new(
        ResolverOptions::default().with_hosts(HostsConfig::new().with_plain_http(reg.host())),
    )
}

/// Runs `work` in its own task with a deadline: returns its result, failing the test on a
/// panic (the task's `JoinError`) or a hang.
async fn contained<T: Send + 'static>(
    case: &str,
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let task = tokio::spawn(tokio::time::timeout(Duration::from_secs(20), work));
    match task.await {
        Ok(Ok(v)) => v,
        Ok(Err(_)) => panic!("{case}: no answer within 20 s"),
        Err(e) => panic!("{case}: the task panicked: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolving_an_endless_or_absurdly_long_manifest_is_an_error() {
    for (case, body) in [
        ("endless", Body::Endless { fill: b' ' }),
        (
            "Content-Length u64::MAX",
            Body::Declared {
                bytes: b"{".to_vec(),
                declared: u64::MAX.to_string(),
            },
        ),
    ] {
        let reg = HostileRegistry::start().unwrap();
        let d = sha256(case.as_bytes());
        let r = Response::with(200, body)
            .header("Content-Type", OCI_MANIFEST)
            .header("Docker-Content-Digest", d.clone());
        reg.route("/v2/lib/manifests/v1", r.clone());
        reg.route(&format!("/v2/lib/manifests/{d}"), r);
        let resolver = resolver(&reg);
        let name = format!("{}/lib:v1", reg.host());
        let got = contained(case, async move {
            let (name, desc) = resolver.resolve(&name).await?;
            let fetcher = resolver.fetcher(&name).await?;
            let stream = fetcher.fetch(&desc).await?;
            let bytes: Vec<bytes::Bytes> = stream.try_collect().await?;
            Ok::<usize, dist::remotes::Error>(bytes.iter().map(|b| b.len()).sum())
        })
        .await;
        assert!(
            got.is_err(),
            "{case}: read {got:?} bytes of a hostile manifest"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_blob_is_cut_at_its_declared_size_or_refused() {
    let reg = HostileRegistry::start().unwrap();
    let layer = OciLayout::tar_gz(&[("hello.txt", b"hello\n")]).unwrap();
    let served = reg
        .image("lib", "v1", std::slice::from_ref(&layer), None)
        .unwrap();
    reg.route(
        &format!("/v2/lib/blobs/{}", served.layer_digests[0]),
        Response::with(200, Body::Endless { fill: 7 }),
    );
    let resolver = resolver(&reg);
    let name = format!("{}/lib:v1", reg.host());
    let digest = served.layer_digests[0].clone();
    let size = layer.0.len() as u64;
    let got = contained("endless blob", async move {
        let (name, _) = resolver.resolve(&name).await?;
        let fetcher = resolver.fetcher(&name).await?;
        let desc = oci_spec::image::Descriptor::new(
            oci_spec::image::MediaType::ImageLayerGzip,
            size,
            digest.parse::<oci_spec::image::Digest>().unwrap(),
        );
        let stream = fetcher.fetch(&desc).await?;
        let mut n = 0u64;
        let mut stream = std::pin::pin!(stream);
        while let Some(chunk) = stream.try_next().await? {
            n += chunk.len() as u64;
            assert!(n <= size, "read {n} bytes of a {size}-byte blob");
        }
        Ok::<u64, dist::remotes::Error>(n)
    })
    .await;
    assert!(
        got.is_err(),
        "an endless blob of wrong bytes was delivered whole: {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_in_u64_max_seconds_does_not_panic_the_task() {
    let reg = HostileRegistry::start().unwrap();
    let layer = OciLayout::tar_gz(&[("hello.txt", b"hello\n")]).unwrap();
    let served = reg.image("lib", "v1", &[layer], None).unwrap();
    reg.guard(
        "Bearer anon-token",
        format!(
            r#"Bearer realm="{}/token",service="hostile",scope="repository:lib:pull""#,
            reg.url()
        ),
    );
    reg.route_fn("/token", |_: &Request| {
        Response::ok(r#"{"token":"anon-token","expires_in":18446744073709551615}"#)
            .header("Content-Type", "application/json")
    });
    let resolver = resolver(&reg);
    let name = format!("{}/lib:v1", reg.host());
    let got = contained("expires_in u64::MAX", async move {
        resolver
            .resolve(&name)
            .await
            .map(|(_, d)| d.digest().to_string())
    })
    .await;
    // Either the token works (clamped lifetime) or the error says why; never a panic.
    if let Ok(d) = got {
        assert_eq!(d, served.manifest_digest);
    }
}
