//! `fetch_handler` copying into the content crate's `LocalStore`: resume, commit, locks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use dist_content::{Ingester, LocalStore, Manager, WriterOpts, read_blob};
use dist_images::Handler;
use dist_remotes::{
    DockerResolver, ErrorKind, Fetcher, HostsConfig, Resolver, ResolverOptions, RetryPolicy,
    fetch_handler, ref_key,
};
use dist_test_support::{AuthMode, FaultServer, OciLayout, Platform, Push, Registry, Reply};
use oci_spec::image::{Descriptor, MediaType};
use tokio::io::AsyncWriteExt;

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 253) as u8).collect()
}

fn desc(bytes: &[u8]) -> Descriptor {
    Descriptor::new(
        MediaType::ImageLayerGzip,
        bytes.len() as u64,
        dist_content::sha256_of(bytes),
    )
}

async fn fault_fetcher(srv: &FaultServer) -> Arc<dyn Fetcher> {
    let opts = ResolverOptions::default()
        .with_hosts(HostsConfig::new().with_plain_http(srv.host()))
        .with_retry(RetryPolicy::none());
    let f = DockerResolver::new(opts)
        .fetcher(&format!("{}/repo", srv.host()))
        .await
        .unwrap();
    Arc::from(f)
}

fn store() -> (tempfile::TempDir, Arc<LocalStore>) {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open(dir.path().join("content")).unwrap();
    (dir, Arc::new(s))
}

/// Leaves a partial ingest of `bytes` under the handler's ref for `d`.
async fn partial_ingest(s: &LocalStore, d: &Descriptor, bytes: &[u8]) {
    let mut w = s
        .writer(WriterOpts::new(ref_key(d)).expected(d.clone()))
        .await
        .unwrap();
    w.write_all(bytes).await.unwrap();
    w.flush().await.unwrap();
}

#[tokio::test]
async fn fetch_handler_pulls_a_whole_image_from_the_registry_into_the_store() {
    let reg = Registry::start(AuthMode::Htpasswd).unwrap();
    let mut layout = OciLayout::new().unwrap();
    let img = layout
        .add_image(
            Some("v1"),
            &Platform::new("linux", "amd64"),
            &[("f", b"content")],
        )
        .unwrap();
    reg.push(layout.path(), "v1", "h/img:v1", Push::oci())
        .unwrap();
    let r = common::resolver(&reg);
    let (name, root) = r
        .resolve(&format!("{}/h/img:v1", reg.host()))
        .await
        .unwrap();
    let fetcher: Arc<dyn Fetcher> = Arc::from(r.fetcher(&name).await.unwrap());
    let (_d, s) = store();
    let h = fetch_handler(s.clone(), fetcher);
    for d in std::iter::once(&root).chain(&img.children) {
        assert!(h.handle(d).await.unwrap().is_empty(), "no children");
        assert_eq!(s.info(d.digest()).await.unwrap().size, d.size());
    }
    assert_eq!(
        read_blob(s.as_ref(), &root, 1 << 20).await.unwrap(),
        img.root_bytes
    );
}

#[tokio::test]
async fn a_partial_ingest_is_resumed_with_range() {
    let blob = data(50_000);
    let d = desc(&blob);
    let b = blob.clone();
    let srv = FaultServer::start(move |req, _| Reply::ranged(req, &b)).unwrap();
    let (_d, s) = store();
    partial_ingest(&s, &d, &blob[..20_000]).await;
    fetch_handler(s.clone(), fault_fetcher(&srv).await)
        .handle(&d)
        .await
        .unwrap();
    assert_eq!(srv.requests()[0].header("range"), Some("bytes=20000-"));
    assert_eq!(read_blob(s.as_ref(), &d, 1 << 20).await.unwrap(), blob);
}

#[tokio::test]
async fn a_complete_ingest_is_committed_without_fetching() {
    let blob = data(1000);
    let d = desc(&blob);
    let srv = FaultServer::start(|_, _| Reply::status(500)).unwrap();
    let (_d, s) = store();
    partial_ingest(&s, &d, &blob).await;
    fetch_handler(s.clone(), fault_fetcher(&srv).await)
        .handle(&d)
        .await
        .unwrap();
    assert!(srv.requests().is_empty());
    assert_eq!(s.info(d.digest()).await.unwrap().size, 1000);
}

#[tokio::test]
async fn content_already_in_the_store_is_success_without_fetching() {
    let blob = data(1000);
    let d = desc(&blob);
    let (_d, s) = store();
    let mut w = s.writer(WriterOpts::new("seed")).await.unwrap();
    w.write_all(&blob).await.unwrap();
    w.commit(d.size(), Some(d.digest())).await.unwrap();
    let srv = FaultServer::start(|_, _| Reply::status(500)).unwrap();
    fetch_handler(s.clone(), fault_fetcher(&srv).await)
        .handle(&d)
        .await
        .unwrap();
    assert!(srv.requests().is_empty());
}

#[tokio::test]
async fn a_wrong_byte_commits_nothing_and_the_next_attempt_starts_afresh() {
    let blob = data(8000);
    let d = desc(&blob);
    let mut bad = blob.clone();
    bad[4000] ^= 1;
    let srv = FaultServer::start(move |req, _| Reply::ranged(req, &bad)).unwrap();
    let (_d, s) = store();
    let err = fetch_handler(s.clone(), fault_fetcher(&srv).await)
        .handle(&d)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    assert_eq!(
        s.info(d.digest()).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    let b = blob.clone();
    let good = FaultServer::start(move |req, _| Reply::ranged(req, &b)).unwrap();
    fetch_handler(s.clone(), fault_fetcher(&good).await)
        .handle(&d)
        .await
        .unwrap();
    assert_eq!(good.requests()[0].header("range"), None, "restarted from 0");
    assert_eq!(read_blob(s.as_ref(), &d, 1 << 20).await.unwrap(), blob);
}

#[tokio::test]
async fn a_busy_ingest_is_waited_for_briefly_then_reported_unavailable() {
    let blob = data(1000);
    let d = desc(&blob);
    let b = blob.clone();
    let srv = FaultServer::start(move |req, _| Reply::ranged(req, &b)).unwrap();
    let (_d, s) = store();
    let holder = s
        .writer(WriterOpts::new(ref_key(&d)).expected(d.clone()))
        .await
        .unwrap();
    let h = fetch_handler(s.clone(), fault_fetcher(&srv).await)
        .with_lock_wait(Duration::from_millis(200));
    let err = h.handle(&d).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");

    // Released while the handler waits: it takes the ingest over and completes.
    let h = h.with_lock_wait(Duration::from_secs(20));
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(holder);
    });
    h.handle(&d).await.unwrap();
    release.await.unwrap();
    assert_eq!(read_blob(s.as_ref(), &d, 1 << 20).await.unwrap(), blob);
}
