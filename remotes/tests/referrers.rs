//! Referrers (OCI 1.1) against two real registries: `ferro-oci-server`, which has the
//! referrers API, and `docker-registry` 2.8, which has not (the `sha256-<hex>` tag
//! fallback). An image and two artifacts with it as subject are pushed with `DockerPusher`,
//! the fallback index kept by the push itself (`DockerReferrers::update_fallback` when the
//! registry does not answer `OCI-Subject`), then listed and filtered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use dist_content::LocalStore;
use dist_images::media_types::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use dist_remotes::{
    DockerResolver, FallbackUpdate, MAX_REFERRERS_PAGES, PushOutcome, Referrers, Resolver,
    referrers_tag,
};
use dist_test_support::{AuthMode, FerroRegistry, HostileRegistry, Registry, Response};
use oci_spec::image::{Descriptor, MediaType};
use serde_json::json;

const SBOM: &str = "application/spdx+json";
const SIG: &str = "application/vnd.example.signature";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// A store holding what is pushed.
struct Blobs {
    _dir: tempfile::TempDir,
    store: LocalStore,
}

impl Blobs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path().join("content")).unwrap();
        Blobs { _dir: dir, store }
    }

    async fn put(&self, media_type: &str, bytes: &[u8]) -> Descriptor {
        let desc = Descriptor::new(
            MediaType::from(media_type),
            bytes.len() as u64,
            dist_content::sha256_of(bytes),
        );
        dist_content::write_blob(&self.store, &format!("t-{}", desc.digest()), &desc, bytes)
            .await
            .unwrap();
        desc
    }

    async fn put_json(&self, media_type: &str, v: &serde_json::Value) -> (Descriptor, Vec<u8>) {
        let bytes = serde_json::to_vec(v).unwrap();
        (self.put(media_type, &bytes).await, bytes)
    }
}

/// Pushes `children` then the manifest `root` to `name`.
async fn push(
    r: &DockerResolver,
    name: &str,
    blobs: &Blobs,
    children: &[&Descriptor],
    root: &Descriptor,
) {
    let pusher = r.pusher(name).await.unwrap();
    for d in children {
        pusher.push(d, &blobs.store).await.unwrap();
    }
    let outcome = pusher.push(root, &blobs.store).await.unwrap();
    assert_eq!(outcome, PushOutcome::Pushed, "{}", root.digest());
}

/// An artifact manifest of `artifact_type` about `subject`, with one layer.
async fn artifact(
    blobs: &Blobs,
    subject: &Descriptor,
    artifact_type: &str,
    content: &[u8],
) -> (Descriptor, Vec<u8>, Vec<Descriptor>) {
    let empty = blobs.put(EMPTY, b"{}").await;
    let layer = blobs.put(artifact_type, content).await;
    let mut subject = subject.clone();
    subject.set_annotations(None);
    let (desc, bytes) = blobs
        .put_json(
            OCI_MANIFEST,
            &json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": empty,
                "layers": [layer],
                "subject": subject,
                "annotations": {"org.example.kind": artifact_type},
            }),
        )
        .await;
    (desc, bytes, vec![empty, layer])
}

/// The whole scenario against a registry at `host`; `api` says whether it has the
/// referrers API.
async fn push_list_and_filter(host: &str, api: bool) {
    let r = DockerResolver::new(common::options(host, AuthMode::None, ""));
    let blobs = Blobs::new();

    // The image.
    let layer = blobs
        .put(
            "application/vnd.oci.image.layer.v1.tar",
            b"not really a tar",
        )
        .await;
    let (config, _) = blobs
        .put_json(
            OCI_CONFIG,
            &json!({"architecture": "amd64", "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": [layer.digest()]}}),
        )
        .await;
    let (image, _) = blobs
        .put_json(
            OCI_MANIFEST,
            &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": config, "layers": [layer]}),
        )
        .await;
    let name = format!("{host}/ref/app:v1");
    push(&r, &name, &blobs, &[&config, &layer], &image).await;
    let (name, root) = r.resolve(&name).await.unwrap();
    assert_eq!(root.digest(), image.digest());
    let referrers = r.referrers(&name).await.unwrap();

    // Nothing refers to it yet.
    assert!(
        referrers
            .referrers(root.digest(), None)
            .await
            .unwrap()
            .is_empty()
    );

    // Two artifacts, pushed by digest: the push itself keeps the fallback index where the
    // registry has no referrers API, so a second update finds the entry already listed.
    let mut pushed = HashMap::new();
    for (ty, content) in [
        (SBOM, &b"{\"spdxVersion\":\"SPDX-2.3\"}"[..]),
        (SIG, b"sig"),
    ] {
        let (desc, bytes, children) = artifact(&blobs, &root, ty, content).await;
        let by_digest = format!("{host}/ref/app@{}", desc.digest());
        let children: Vec<&Descriptor> = children.iter().collect();
        push(&r, &by_digest, &blobs, &children, &desc).await;
        let update = referrers.update_fallback(&desc, &bytes).await.unwrap();
        let want = if api {
            FallbackUpdate::ApiSupported
        } else {
            FallbackUpdate::AlreadyListed
        };
        assert_eq!(update, want, "{ty}");
        pushed.insert(desc.digest().clone(), (ty, desc));
    }

    // Listed, each with its type, size and annotations.
    let all = referrers.referrers(root.digest(), None).await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    for d in &all {
        let (ty, desc) = &pushed[d.digest()];
        assert_eq!(d.size(), desc.size());
        assert_eq!(
            d.artifact_type().as_ref().map(|t| t.to_string()).as_deref(),
            Some(*ty)
        );
        let kind = d
            .annotations()
            .as_ref()
            .and_then(|a| a.get("org.example.kind").cloned());
        assert_eq!(kind.as_deref(), Some(*ty));
    }

    // Filtered by artifact type.
    let sboms = referrers
        .referrers(root.digest(), Some(SBOM))
        .await
        .unwrap();
    assert_eq!(sboms.len(), 1);
    assert_eq!(pushed[sboms[0].digest()].0, SBOM);
    let none = referrers
        .referrers(root.digest(), Some("application/x-none"))
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");

    // The fallback index is a tag (only without the API); a second update adds nothing.
    let fallback = referrers
        .tagged(&referrers_tag(root.digest()))
        .await
        .unwrap();
    assert_eq!(fallback.is_some(), !api);
    if !api {
        let (_, (_, desc)) = pushed.iter().next().unwrap();
        let bytes = referrers.fetch_bytes(desc, 1 << 20).await.unwrap();
        let again = referrers.update_fallback(desc, &bytes).await.unwrap();
        assert_eq!(again, FallbackUpdate::AlreadyListed);
        assert_eq!(
            referrers
                .referrers(root.digest(), None)
                .await
                .unwrap()
                .len(),
            2
        );
    }

    // A manifest without a subject needs no fallback entry; an absent tag is `None`.
    let (plain, plain_bytes) = blobs
        .put_json(
            OCI_MANIFEST,
            &json!({"schemaVersion": 2, "config": config, "layers": []}),
        )
        .await;
    assert_eq!(
        referrers
            .update_fallback(&plain, &plain_bytes)
            .await
            .unwrap(),
        FallbackUpdate::NoSubject
    );
    assert!(referrers.tagged("no-such-tag").await.unwrap().is_none());
}

#[tokio::test]
async fn referrers_are_listed_and_filtered_through_the_api_of_ferro_oci_server() {
    let reg = FerroRegistry::start().unwrap();
    push_list_and_filter(&reg.host(), true).await;
}

#[tokio::test]
async fn referrers_fall_back_to_the_tag_schema_on_docker_registry() {
    let reg = Registry::start(AuthMode::None).unwrap();
    push_list_and_filter(&reg.host(), false).await;
}

#[tokio::test]
async fn a_manifest_that_does_not_match_its_descriptor_is_not_recorded() {
    let reg = Registry::start(AuthMode::None).unwrap();
    let host = reg.host();
    let r = DockerResolver::new(common::options(&host, AuthMode::None, ""));
    let referrers = r.referrers(&format!("{host}/ref/app")).await.unwrap();
    let bytes = br#"{"schemaVersion":2}"#;
    let desc = Descriptor::new(
        MediaType::ImageManifest,
        bytes.len() as u64,
        dist_content::sha256_of(b"other"),
    );
    let err = referrers.update_fallback(&desc, bytes).await.unwrap_err();
    assert_eq!(
        err.kind(),
        dist_remotes::ErrorKind::FailedPrecondition,
        "{err}"
    );
}

/// A referrers index listing one manifest per artifact type, as JSON.
fn listing(types: &[&str]) -> Vec<u8> {
    let manifests: Vec<serde_json::Value> = types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let digest = dist_content::sha256_of(format!("{t} {i}").as_bytes());
            json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": 100 + i, "artifactType": t})
        })
        .collect();
    serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}))
        .unwrap()
}

#[tokio::test]
async fn pages_are_followed_and_filtered_here_when_the_registry_did_not_filter() {
    let reg = HostileRegistry::start().unwrap();
    let subject = dist_content::sha256_of(b"subject");
    let path = format!("/v2/app/referrers/{subject}");
    let next = format!("<{path}?page=2>; rel=\"next\"");
    reg.route_fn(&path, move |req| {
        if req.target.contains("page=2") {
            Response::ok(listing(&[SBOM])).header("Content-Type", OCI_INDEX)
        } else {
            // The registry ignores `artifactType` and says nothing of filters.
            Response::ok(listing(&[SBOM, SIG]))
                .header("Content-Type", OCI_INDEX)
                .header("Link", next.clone())
        }
    });
    let r = DockerResolver::new(common::fault_options(&reg.host()));
    let referrers = r.referrers(&format!("{}/app", reg.host())).await.unwrap();
    let all = referrers.referrers(&subject, None).await.unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    let sboms = referrers.referrers(&subject, Some(SBOM)).await.unwrap();
    assert_eq!(sboms.len(), 2, "{sboms:?}");
    assert!(
        sboms
            .iter()
            .all(|d| d.artifact_type() == &Some(MediaType::from(SBOM)))
    );
    let asked = reg.requests();
    assert!(
        asked
            .iter()
            .any(|q| q.target.contains("artifactType=application%2Fspdx%2Bjson")),
        "the filter is passed on: {asked:?}"
    );
}

#[tokio::test]
async fn a_listing_whose_pages_never_end_is_cut_at_the_page_bound() {
    let reg = HostileRegistry::start().unwrap();
    let subject = dist_content::sha256_of(b"subject");
    let path = format!("/v2/app/referrers/{subject}");
    let again = format!("<{path}>; rel=\"next\"");
    reg.route(
        &path,
        Response::ok(listing(&[SIG]))
            .header("Content-Type", OCI_INDEX)
            .header("Link", again),
    );
    let r = DockerResolver::new(common::fault_options(&reg.host()));
    let referrers = r.referrers(&format!("{}/app", reg.host())).await.unwrap();
    let listed = referrers.referrers(&subject, None).await.unwrap();
    assert_eq!(listed.len(), MAX_REFERRERS_PAGES);
}

#[tokio::test]
async fn an_answer_that_is_not_an_index_means_no_api_and_the_tag_is_read() {
    let reg = HostileRegistry::start().unwrap();
    let subject = dist_content::sha256_of(b"subject");
    reg.route(
        &format!("/v2/app/referrers/{subject}"),
        Response::ok(b"<html>welcome</html>".to_vec()).header("Content-Type", "text/html"),
    );
    let tag = referrers_tag(&subject);
    let index = listing(&[SBOM, SIG]);
    let digest = reg.manifest("app", &tag, OCI_INDEX, &index);
    reg.manifest("app", &digest, OCI_INDEX, &index);
    let r = DockerResolver::new(common::fault_options(&reg.host()));
    let referrers = r.referrers(&format!("{}/app", reg.host())).await.unwrap();
    let listed = referrers.referrers(&subject, Some(SIG)).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
}
