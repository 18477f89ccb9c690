//! Chunked, resumable blob uploads against real registries (`docker-registry` 2.8.2 in its
//! three auth modes, and `ferro-oci-server`), with a `CountingProxy` in front to count the
//! bytes sent and to inject faults into chosen `PATCH`es.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod push_support;

use std::time::Duration;

use dist_remotes::{DockerResolver, HostsConfig, HostsFile, PushOutcome, Resolver};
use dist_test_support::{AuthMode, CountingProxy, Fault, FerroRegistry, Registry};
use push_support::{image, options_via, plain};

const CHUNK: u64 = 256 * 1024;
/// Ten full chunks and a partial one.
const LAYER: usize = 10 * 256 * 1024 + 12_345;

fn chunks(size: usize, chunk: u64) -> usize {
    (size as u64).div_ceil(chunk) as usize
}

/// The PATCHes and PUTs that carried the layer.
fn patch_count(p: &CountingProxy) -> usize {
    p.requests().iter().filter(|s| s.method == "PATCH").count()
}

async fn chunked_round_trip(mode: AuthMode) {
    let reg = Registry::start(mode).unwrap();
    let proxy = CountingProxy::start(&reg.host()).unwrap();
    let host = proxy.host();
    let img = image(LAYER, 1).await;
    let r = DockerResolver::new(options_via(&reg, &host).with_chunked_upload(CHUNK));
    let reference = format!("{host}/chunked/img:v1");
    let pusher = r.pusher(&reference).await.unwrap();
    let outcome = img.push(pusher.as_ref()).await;
    assert_eq!(
        outcome.unwrap_or_else(|e| panic!("{e}\n{}", reg.log())),
        PushOutcome::Pushed
    );
    img.assert_served(&r, &reference).await;

    let seen = proxy.requests();
    let patches: Vec<_> = seen.iter().filter(|s| s.method == "PATCH").collect();
    // The layer in 11 chunks and the config in one.
    assert_eq!(patches.len(), chunks(LAYER, CHUNK) + 1);
    let mut start = 0u64;
    for p in patches.iter().take(chunks(LAYER, CHUNK)) {
        let end = (start + CHUNK).min(LAYER as u64) - 1;
        assert_eq!(
            p.headers.get("content-range").map(String::as_str),
            Some(format!("{start}-{end}").as_str())
        );
        assert_eq!(p.body_bytes, end - start + 1);
        start = end + 1;
    }
    let blob_bytes = (LAYER as u64) + img.config.size();
    assert_eq!(proxy.body_bytes("PATCH"), blob_bytes, "each byte sent once");
    assert_eq!(
        proxy.body_bytes("PUT"),
        img.manifest.size(),
        "the closing PUTs are empty; only the manifest has a body"
    );

    // Pushed again, everything is present: the tag's HEAD names the manifest's digest, so
    // nothing is written.
    let before = proxy.requests().len();
    for d in [&img.layer, &img.config, &img.manifest] {
        let outcome = pusher.push(d, &img.store).await.unwrap();
        assert_eq!(outcome, PushOutcome::AlreadyPresent, "{}", d.digest());
    }
    let again: Vec<_> = proxy.requests()[before..]
        .iter()
        .filter(|s| s.status != Some(401))
        .map(|s| (s.method.clone(), s.path.clone()))
        .collect();
    let path = |p: &str| format!("/v2/chunked/img/{p}");
    assert_eq!(
        again,
        vec![
            (
                "HEAD".to_string(),
                path(&format!("blobs/{}", img.layer.digest()))
            ),
            (
                "HEAD".to_string(),
                path(&format!("blobs/{}", img.config.digest()))
            ),
            ("HEAD".to_string(), path("manifests/v1")),
        ]
    );
}

#[tokio::test]
async fn a_chunked_push_round_trips_without_auth() {
    chunked_round_trip(AuthMode::None).await;
}

#[tokio::test]
async fn a_chunked_push_round_trips_with_htpasswd() {
    chunked_round_trip(AuthMode::Htpasswd).await;
}

#[tokio::test]
async fn a_chunked_push_round_trips_with_a_token_server() {
    chunked_round_trip(AuthMode::Token).await;
}

#[tokio::test]
async fn a_chunked_push_round_trips_on_ferro() {
    let reg = FerroRegistry::start().unwrap();
    let proxy = CountingProxy::start(&reg.host()).unwrap();
    let host = proxy.host();
    let img = image(LAYER, 2).await;
    let r = DockerResolver::new(plain(&host).with_chunked_upload(CHUNK));
    let reference = format!("{host}/chunked/img:v1");
    let pusher = r.pusher(&reference).await.unwrap();
    let outcome = img.push(pusher.as_ref()).await;
    assert_eq!(
        outcome.unwrap_or_else(|e| panic!("{e}\n{}", reg.log())),
        PushOutcome::Pushed
    );
    img.assert_served(&r, &reference).await;
    assert_eq!(patch_count(&proxy), chunks(LAYER, CHUNK) + 1);
    assert_eq!(proxy.body_bytes("PATCH"), LAYER as u64 + img.config.size());
}

#[tokio::test]
async fn oci_chunk_min_length_raises_the_chunk_size() {
    let reg = Registry::start(AuthMode::None).unwrap();
    let proxy = CountingProxy::start(&reg.host()).unwrap();
    let min = 1024 * 1024;
    proxy.add_chunk_min_length(min);
    let host = proxy.host();
    let img = image(LAYER, 3).await;
    let r = DockerResolver::new(plain(&host).with_chunked_upload(CHUNK));
    let reference = format!("{host}/min/img:v1");
    let pusher = r.pusher(&reference).await.unwrap();
    img.push(pusher.as_ref()).await.unwrap();
    img.assert_served(&r, &reference).await;
    let layer_patches: Vec<u64> = proxy
        .requests()
        .iter()
        .filter(|s| s.method == "PATCH" && s.body_bytes > img.config.size())
        .map(|s| s.body_bytes)
        .collect();
    assert_eq!(layer_patches.len(), chunks(LAYER, min));
    assert!(
        layer_patches[..layer_patches.len() - 1]
            .iter()
            .all(|n| *n == min)
    );
}

/// Pushes a chunked image through a proxy that applies `fault` to the third `PATCH`, and
/// checks the push resumed from the registry's offset: one status `GET`, and no more bytes
/// sent than the blob and the one chunk that was lost.
async fn resumes_after(fault: Fault) {
    let reg = Registry::start(AuthMode::None).unwrap();
    let proxy = CountingProxy::start(&reg.host()).unwrap();
    proxy.fault_patch(3, fault);
    let host = proxy.host();
    let img = image(LAYER, 4).await;
    let r = DockerResolver::new(plain(&host).with_chunked_upload(CHUNK));
    let reference = format!("{host}/faults/img:v1");
    let pusher = r.pusher(&reference).await.unwrap();
    let outcome = img.push(pusher.as_ref()).await;
    assert_eq!(
        outcome.unwrap_or_else(|e| panic!("{e}\n{}", reg.log())),
        PushOutcome::Pushed
    );
    img.assert_served(&r, &reference).await;

    let seen = proxy.requests();
    let posts = seen.iter().filter(|s| s.method == "POST").count();
    assert_eq!(
        posts, 2,
        "one upload per blob: the layer's was not opened again"
    );
    let statuses = seen
        .iter()
        .filter(|s| s.method == "GET" && s.path.contains("/blobs/uploads/"))
        .count();
    assert_eq!(statuses, 1, "one GET of the session after the fault");
    let sent = proxy.body_bytes("PATCH");
    let blobs = LAYER as u64 + img.config.size();
    assert!(
        sent <= blobs + CHUNK,
        "{sent} bytes sent for {blobs}: resumed from the registry's offset"
    );
    assert_eq!(patch_count(&proxy), chunks(LAYER, CHUNK) + 2);
}

#[tokio::test]
async fn a_503_mid_patch_resumes_from_the_registrys_offset() {
    resumes_after(Fault::Status(503)).await;
}

#[tokio::test]
async fn a_reset_mid_patch_resumes_from_the_registrys_offset() {
    resumes_after(Fault::Reset).await;
}

#[tokio::test]
async fn a_416_is_followed_by_a_status_get_and_the_upload_continues() {
    resumes_after(Fault::Status(416)).await;
}

/// Pushes a chunked image to `upstream` through a proxy that applies `fault` to the third
/// `PATCH` after forwarding (all or part of) it; returns the `PATCH` bytes sent and how many
/// uploads were opened.
async fn push_through_forwarded_fault(upstream: &str, fault: Fault, seed: u8) -> (u64, usize) {
    let proxy = CountingProxy::start(upstream).unwrap();
    proxy.fault_patch(3, fault);
    let host = proxy.host();
    let img = image(LAYER, seed).await;
    let r = DockerResolver::new(plain(&host).with_chunked_upload(CHUNK));
    let reference = format!("{host}/forwarded/img:v1");
    let pusher = r.pusher(&reference).await.unwrap();
    assert_eq!(
        img.push(pusher.as_ref()).await.unwrap(),
        PushOutcome::Pushed
    );
    img.assert_served(&r, &reference).await;
    let posts = proxy
        .requests()
        .iter()
        .filter(|s| s.method == "POST")
        .count();
    let layer_bytes = proxy.body_bytes("PATCH") - img.config.size();
    (layer_bytes, posts - 1)
}

#[tokio::test]
async fn a_lost_answer_to_a_chunk_the_registry_took_resumes_after_that_chunk_on_ferro() {
    let reg = FerroRegistry::start().unwrap();
    let (sent, uploads) =
        push_through_forwarded_fault(&reg.host(), Fault::AnswerLost(502), 8).await;
    assert_eq!(uploads, 1);
    assert_eq!(
        sent, LAYER as u64,
        "the registry's Range said it had the chunk: nothing sent twice"
    );
}

#[tokio::test]
async fn a_body_cut_mid_chunk_resumes_from_the_registrys_offset_on_ferro() {
    let reg = FerroRegistry::start().unwrap();
    let (sent, uploads) = push_through_forwarded_fault(&reg.host(), Fault::CutMidBody, 9).await;
    assert_eq!(uploads, 1);
    assert!(sent <= LAYER as u64 + CHUNK / 2, "{sent}");
}

/// `docker-registry` 2.8 refuses (and cancels) a session whose `_state` offset is behind
/// what it stored, which a lost answer or a half-written chunk leaves behind: the push
/// still succeeds, with a fresh upload.
#[tokio::test]
async fn a_session_docker_registry_cancels_after_a_lost_answer_or_cut_body_is_started_again() {
    for (fault, seed) in [(Fault::AnswerLost(502), 10), (Fault::CutMidBody, 11)] {
        let reg = Registry::start(AuthMode::None).unwrap();
        let (sent, uploads) = push_through_forwarded_fault(&reg.host(), fault, seed).await;
        assert_eq!(
            uploads, 2,
            "{fault:?}: a fresh upload after the lost session"
        );
        assert!(sent <= 2 * LAYER as u64, "{fault:?}: {sent}");
    }
}

/// A push of `img`'s layer through `proxy` that is abandoned while its fifth `PATCH` hangs,
/// after four acknowledged chunks: what a killed process leaves behind.
async fn interrupted_push(
    proxy: &CountingProxy,
    opts: dist_remotes::ResolverOptions,
    reference: &str,
    img: &std::sync::Arc<push_support::Image>,
) {
    proxy.fault_patch(5, Fault::Hang);
    let first = DockerResolver::new(opts);
    let pusher = first.pusher(reference).await.unwrap();
    let layer = img.clone();
    let task = tokio::spawn(async move { pusher.push(&layer.layer, &layer.store).await });
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while proxy.patches() < 5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the push reached its fifth PATCH");
    task.abort();
    assert!(
        task.await.is_err(),
        "the push was still waiting when aborted"
    );
}

#[tokio::test]
async fn an_interrupted_push_resumes_in_a_new_pusher_from_the_saved_state() {
    let reg = Registry::start(AuthMode::None).unwrap();
    let proxy = CountingProxy::start(&reg.host()).unwrap();
    let host = proxy.host();
    let state = tempfile::tempdir().unwrap();
    let img = std::sync::Arc::new(image(LAYER, 5).await);
    let opts = plain(&host)
        .with_chunked_upload(CHUNK)
        .with_upload_state_dir(state.path());
    let reference = format!("{host}/resume/img:v1");
    interrupted_push(&proxy, opts.clone(), &reference, &img).await;
    let files = std::fs::read_dir(state.path()).unwrap().count();
    assert_eq!(files, 1, "the upload's state was saved");

    // A new resolver (as a new process would have) continues the registry's session.
    let second = DockerResolver::new(opts);
    let pusher = second.pusher(&reference).await.unwrap();
    let outcome = img.push(pusher.as_ref()).await;
    assert_eq!(
        outcome.unwrap_or_else(|e| panic!("{e}\n{}", reg.log())),
        PushOutcome::Pushed
    );
    img.assert_served(&second, &reference).await;

    let seen = proxy.requests();
    let posts = seen.iter().filter(|s| s.method == "POST").count();
    assert_eq!(
        posts, 2,
        "the layer's upload was opened once (and the config's)"
    );
    let sent = proxy.body_bytes("PATCH");
    let blobs = LAYER as u64 + img.config.size();
    assert!(
        sent <= blobs + CHUNK,
        "{sent} bytes sent for {blobs}: the second push did not start over"
    );
    let files = std::fs::read_dir(state.path()).unwrap().count();
    assert_eq!(files, 0, "the state is removed once the upload completes");
}

#[tokio::test]
async fn a_resumed_upload_keeps_the_chunk_minimum_the_registry_set_when_it_opened() {
    let reg = Registry::start(AuthMode::None).unwrap();
    let proxy = CountingProxy::start(&reg.host()).unwrap();
    let min = 2 * CHUNK;
    proxy.add_chunk_min_length(min);
    let host = proxy.host();
    let state = tempfile::tempdir().unwrap();
    let img = std::sync::Arc::new(image(LAYER, 12).await);
    let opts = plain(&host)
        .with_chunked_upload(CHUNK)
        .with_upload_state_dir(state.path());
    let reference = format!("{host}/minimum/img:v1");
    interrupted_push(&proxy, opts.clone(), &reference, &img).await;
    let second = DockerResolver::new(opts);
    let pusher = second.pusher(&reference).await.unwrap();
    assert_eq!(
        pusher.push(&img.layer, &img.store).await.unwrap(),
        PushOutcome::Pushed
    );
    let sizes: Vec<u64> = proxy
        .requests()
        .iter()
        .filter(|s| s.method == "PATCH")
        .map(|s| s.body_bytes)
        .collect();
    // Four acknowledged chunks, the hung one, then the rest: all at the minimum but the last.
    assert_eq!(sizes.len(), chunks(LAYER, min) + 1, "{sizes:?}");
    assert!(
        sizes[..sizes.len() - 1].iter().all(|n| *n == min),
        "{sizes:?}"
    );
}

#[tokio::test]
async fn a_saved_session_the_registry_lost_starts_a_fresh_upload() {
    let reg = Registry::start(AuthMode::None).unwrap();
    let proxy = CountingProxy::start(&reg.host()).unwrap();
    let host = proxy.host();
    let state = tempfile::tempdir().unwrap();
    let img = std::sync::Arc::new(image(LAYER, 6).await);
    let opts = plain(&host)
        .with_chunked_upload(CHUNK)
        .with_upload_state_dir(state.path());
    let reference = format!("{host}/lost/img:v1");
    interrupted_push(&proxy, opts.clone(), &reference, &img).await;

    // The registry cancels the session (as an expiry would): the hung PATCH's URL is it.
    let hung = proxy
        .requests()
        .into_iter()
        .rfind(|s| s.method == "PATCH")
        .unwrap();
    let cancel = format!(
        "DELETE {}?{} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        hung.path, hung.query
    );
    let mut sock = std::net::TcpStream::connect(reg.host()).unwrap();
    use std::io::{Read, Write};
    sock.write_all(cancel.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = sock.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");

    let second = DockerResolver::new(opts);
    let pusher = second.pusher(&reference).await.unwrap();
    let outcome = img.push(pusher.as_ref()).await;
    assert_eq!(
        outcome.unwrap_or_else(|e| panic!("{e}\n{}", reg.log())),
        PushOutcome::Pushed
    );
    img.assert_served(&second, &reference).await;
    let posts = proxy
        .requests()
        .iter()
        .filter(|s| s.method == "POST")
        .count();
    assert_eq!(posts, 3, "a fresh upload for the layer, then the config's");
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn upload_chunk_size_in_hosts_toml_turns_chunking_on_for_that_host() {
    let reg = Registry::start(AuthMode::None).unwrap();
    let proxy = CountingProxy::start(&reg.host()).unwrap();
    let host = proxy.host();
    let (name, port) = host.rsplit_once(':').unwrap();
    let file = HostsFile::parse(
        &format!(
            "server = \"http://{host}\"\nupload_chunk_size = {}\n",
            512 * 1024
        ),
        std::path::Path::new("/etc/containerd/certs.d/x/hosts.toml"),
    )
    .unwrap();
    let hosts = HostsConfig::new().with_hosts_file(format!("{name}_{port}_"), file);
    let r = DockerResolver::new(plain(&host).with_hosts(hosts));
    let img = image(LAYER, 7).await;
    let reference = format!("{host}/hosts/img:v1");
    let pusher = r.pusher(&reference).await.unwrap();
    img.push(pusher.as_ref()).await.unwrap();
    img.assert_served(&r, &reference).await;
    assert_eq!(
        patch_count(&proxy),
        chunks(LAYER, 512 * 1024) + 1,
        "the layer in 512 KiB chunks, the config in one"
    );
}
