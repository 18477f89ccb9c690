//! `CosignVerifier` through `verify_image`, with cosign's OCI 1.1 form of a signature: a
//! referrer of artifact type `application/vnd.dev.cosign.artifact.sig.v1+json`, found
//! through `ferro-oci-server`'s referrers API (the `sha256-<hex>.sig` tag form is covered
//! end to end by `tests/dist_verify.rs`). Keys and signatures come from the `openssl` CLI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use dist_content::LocalStore;
use dist_images::media_types::{OCI_CONFIG, OCI_MANIFEST};
use dist_remotes::{
    COSIGN_SIGNATURE_ANNOTATION, CosignVerifier, DockerResolver, ErrorKind, Resolver, VerifyError,
    verify_image,
};
use dist_test_support::{AuthMode, FerroRegistry};
use oci_spec::image::{Descriptor, MediaType};
use serde_json::json;

async fn openssl(args: &[&str]) -> Vec<u8> {
    let out = tokio::process::Command::new("openssl")
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A P-256 key pair: the private key's path and the PEM public key.
async fn keypair(dir: &Path, name: &str) -> (String, String) {
    let key = dir.join(format!("{name}.key")).to_str().unwrap().to_owned();
    let public = dir.join(format!("{name}.pub")).to_str().unwrap().to_owned();
    openssl(&[
        "ecparam",
        "-genkey",
        "-name",
        "prime256v1",
        "-noout",
        "-out",
        &key,
    ])
    .await;
    openssl(&["ec", "-in", &key, "-pubout", "-out", &public]).await;
    (key, tokio::fs::read_to_string(&public).await.unwrap())
}

/// The base64 DER ECDSA-SHA256 signature of `payload` by `key`.
async fn sign(dir: &Path, key: &str, payload: &[u8]) -> String {
    let data = dir.join("payload").to_str().unwrap().to_owned();
    let sig = dir.join("payload.sig").to_str().unwrap().to_owned();
    tokio::fs::write(&data, payload).await.unwrap();
    openssl(&["dgst", "-sha256", "-sign", key, "-out", &sig, &data]).await;
    String::from_utf8(openssl(&["base64", "-A", "-in", &sig]).await).unwrap()
}

async fn put(store: &LocalStore, media_type: &str, bytes: &[u8]) -> Descriptor {
    let desc = Descriptor::new(
        MediaType::from(media_type),
        bytes.len() as u64,
        dist_content::sha256_of(bytes),
    );
    dist_content::write_blob(store, &format!("t-{}", desc.digest()), &desc, bytes)
        .await
        .unwrap();
    desc
}

/// Pushes `descs` (blobs first, the manifest last) to `name`.
async fn push(r: &DockerResolver, name: &str, store: &LocalStore, descs: &[&Descriptor]) {
    let pusher = r.pusher(name).await.unwrap();
    for d in descs {
        pusher.push(d, store).await.unwrap();
    }
}

/// Pushes an image with one layer of `content` to `repo:tag`.
async fn image(
    r: &DockerResolver,
    host: &str,
    store: &LocalStore,
    repo_tag: &str,
    content: &[u8],
) -> Descriptor {
    let layer = put(store, "application/vnd.oci.image.layer.v1.tar", content).await;
    let config = json!({"architecture": "amd64", "os": "linux",
                        "rootfs": {"type": "layers", "diff_ids": [layer.digest()]}});
    let config = put(store, OCI_CONFIG, &serde_json::to_vec(&config).unwrap()).await;
    let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": config, "layers": [layer]});
    let manifest = put(store, OCI_MANIFEST, &serde_json::to_vec(&manifest).unwrap()).await;
    push(
        r,
        &format!("{host}/{repo_tag}"),
        store,
        &[&layer, &config, &manifest],
    )
    .await;
    manifest
}

/// The registry and local scratch space a test pushes with.
struct Env {
    r: DockerResolver,
    host: String,
    store: LocalStore,
    dir: tempfile::TempDir,
}

/// Pushes a cosign signature referrer of `subject` whose payload names `signed`.
async fn signature_referrer(
    env: &Env,
    repo: &str,
    subject: &Descriptor,
    signed: &Descriptor,
    key: &str,
) {
    let (r, host, store, dir) = (&env.r, env.host.as_str(), &env.store, env.dir.path());
    let payload = serde_json::to_vec(&json!({
        "critical": {"identity": {"docker-reference": format!("{host}/{repo}")},
                     "image": {"docker-manifest-digest": signed.digest()},
                     "type": "cosign container image signature"},
        "optional": null,
    }))
    .unwrap();
    let signature = sign(dir, key, &payload).await;
    let mut layer = put(
        store,
        "application/vnd.dev.cosign.simplesigning.v1+json",
        &payload,
    )
    .await;
    let empty = put(store, "application/vnd.oci.empty.v1+json", b"{}").await;
    let blobs = [layer.clone(), empty.clone()];
    layer.set_annotations(Some(
        [(COSIGN_SIGNATURE_ANNOTATION.to_owned(), signature)].into(),
    ));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
        "config": empty,
        "layers": [layer],
        "subject": subject,
    });
    let manifest = put(store, OCI_MANIFEST, &serde_json::to_vec(&manifest).unwrap()).await;
    let name = format!("{host}/{repo}@{}", manifest.digest());
    push(r, &name, store, &[&blobs[0], &blobs[1], &manifest]).await;
}

#[tokio::test]
async fn cosign_signatures_found_as_referrers_admit_or_refuse_an_image() {
    let reg = FerroRegistry::start().unwrap();
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let env = Env {
        r: DockerResolver::new(common::options(&host, AuthMode::None, "")),
        host: host.clone(),
        store: LocalStore::open(dir.path().join("content")).unwrap(),
        dir,
    };
    let (r, store, dir) = (&env.r, &env.store, &env.dir);
    let (key, public) = keypair(dir.path(), "trusted").await;
    let (other_key, other_public) = keypair(dir.path(), "other").await;
    let trusted = CosignVerifier::from_pem(&public).unwrap();
    let other = CosignVerifier::from_pem(&other_public).unwrap();
    let max = dist_images::MAX_MANIFEST_SIZE;

    let signed = image(r, &host, store, "sig/app:v1", b"signed").await;
    let name = format!("{host}/sig/app:v1");
    let (name, root) = r.resolve(&name).await.unwrap();
    let remote = r.referrers(&name).await.unwrap();

    // Unsigned so far.
    let err = verify_image(&trusted, &remote, &name, &root, max)
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::Unsigned { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);

    // Signed with the trusted key: admitted by it, refused by another.
    signature_referrer(&env, "sig/app", &signed, &signed, &key).await;
    verify_image(&trusted, &remote, &name, &root, max)
        .await
        .unwrap();
    let err = verify_image(&other, &remote, &name, &root, max)
        .await
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::WrongKey { checked: 1, .. }),
        "{err}"
    );

    // Another image carrying a genuine signature of the first: refused.
    let swapped = image(r, &host, store, "sig/app:v2", b"swapped").await;
    signature_referrer(&env, "sig/app", &swapped, &signed, &key).await;
    let (name2, root2) = r.resolve(&format!("{host}/sig/app:v2")).await.unwrap();
    assert_eq!(root2.digest(), swapped.digest());
    let err = verify_image(&trusted, &remote, &name2, &root2, max)
        .await
        .unwrap_err();
    match &err {
        VerifyError::DigestMismatch {
            resolved,
            signed: s,
            ..
        } => {
            assert_eq!(resolved, &swapped.digest().to_string());
            assert_eq!(s, &signed.digest().to_string());
        }
        other => panic!("{other}"),
    }

    // A signature by the other key does not make the trusted one accept it.
    let third = image(r, &host, store, "sig/app:v3", b"third").await;
    signature_referrer(&env, "sig/app", &third, &third, &other_key).await;
    let (name3, root3) = r.resolve(&format!("{host}/sig/app:v3")).await.unwrap();
    let err = verify_image(&trusted, &remote, &name3, &root3, max)
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::WrongKey { .. }), "{err}");
    verify_image(&other, &remote, &name3, &root3, max)
        .await
        .unwrap();
}
