//! `dist pull --verify-key`: cosign key-pair signatures, made by signers nobody here wrote.
//!
//! The trusted key pair and its signatures come from sigstore-rs (its offline crypto:
//! `SigningScheme::ECDSA_P256_SHA256_ASN1`); the other key's from the `openssl` CLI
//! (`ecparam -genkey -name prime256v1`, `dgst -sha256 -sign`). Every signature is accepted
//! by sigstore-rs's `CosignVerificationKey` and by `openssl dgst -verify` before `dist` is
//! asked about it. sigstore-rs cannot push a key-pair signature without its registry
//! client and Rekor, so the attachment is built from cosign's documented format: a
//! manifest tagged `sha256-<hex>.sig` whose layer is the "simple signing" payload, with the
//! base64 DER signature in `dev.cosignproject.cosign/signature`.
//!
//! A signed image pulls; unsigned, wrong-key and re-tagged (digest-swapped) images are
//! refused with one error line, nothing fetched, nothing unpacked, no image recorded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use dist::content::LocalStore;
use dist::oci_spec::image::{Descriptor, MediaType};
use dist::remotes::{Anonymous, DockerResolver, HostsConfig, Resolver, ResolverOptions};
use dist_test_support::{AuthMode, OciLayout, Platform, Push, Registry};
use serde_json::json;
use sigstore::crypto::{CosignVerificationKey, SigStoreSigner, Signature, SigningScheme};
use support::Dist;

const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Who holds a private key.
enum Signer {
    Sigstore(SigStoreSigner),
    /// A PEM private key file.
    Openssl(PathBuf),
}

/// A P-256 key pair, as `cosign generate-key-pair` makes, with its PEM public key on disk.
struct Key {
    signer: Signer,
    public: PathBuf,
    pem: String,
}

impl Key {
    /// A key pair made by sigstore-rs.
    fn sigstore(dir: &Path, name: &str) -> Self {
        let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
            .create_signer()
            .unwrap();
        let pem = signer
            .to_sigstore_keypair()
            .unwrap()
            .public_key_to_pem()
            .unwrap();
        let public = dir.join(format!("{name}.pub"));
        std::fs::write(&public, &pem).unwrap();
        Key {
            signer: Signer::Sigstore(signer),
            public,
            pem,
        }
    }

    /// A key pair made by openssl.
    fn openssl(dir: &Path, name: &str) -> Self {
        let key = dir.join(format!("{name}.key"));
        let public = dir.join(format!("{name}.pub"));
        let (k, p) = (key.to_str().unwrap(), public.to_str().unwrap());
        openssl(&[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-noout",
            "-out",
            k,
        ]);
        openssl(&["ec", "-in", k, "-pubout", "-out", p]);
        let pem = std::fs::read_to_string(&public).unwrap();
        Key {
            signer: Signer::Openssl(key),
            public,
            pem,
        }
    }

    /// The base64 DER ECDSA-SHA256 signature of `payload`, checked by sigstore-rs's
    /// verifier and by openssl first.
    fn sign(&self, dir: &Path, payload: &[u8]) -> String {
        let data = dir.join("payload.json");
        let sig = dir.join("payload.sig");
        std::fs::write(&data, payload).unwrap();
        let (d, s) = (data.to_str().unwrap(), sig.to_str().unwrap());
        match &self.signer {
            Signer::Sigstore(signer) => {
                std::fs::write(&sig, signer.sign(payload).unwrap()).unwrap()
            }
            Signer::Openssl(key) => {
                openssl(&[
                    "dgst",
                    "-sha256",
                    "-sign",
                    key.to_str().unwrap(),
                    "-out",
                    s,
                    d,
                ]);
            }
        }
        let der = std::fs::read(&sig).unwrap();
        let scheme = SigningScheme::ECDSA_P256_SHA256_ASN1;
        CosignVerificationKey::from_pem(self.pem.as_bytes(), &scheme)
            .unwrap()
            .verify_signature(Signature::Raw(&der), payload)
            .expect("sigstore-rs accepts the signature");
        let public = self.public.to_str().unwrap();
        let verified = openssl(&["dgst", "-sha256", "-verify", public, "-signature", s, d]);
        assert!(String::from_utf8_lossy(&verified).contains("Verified OK"));
        String::from_utf8(openssl(&["base64", "-A", "-in", s])).unwrap()
    }
}

/// cosign's simple-signing payload for `digest` of `reference`'s repository.
fn payload(repository: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": null
    }))
    .unwrap()
}

/// A registry with an image per case, and the test's keys.
struct Setup {
    reg: Registry,
    work: tempfile::TempDir,
    /// The trusted key (sigstore-rs's).
    key: Key,
    /// Another key (openssl's).
    other: Key,
}

impl Setup {
    fn new() -> Self {
        let reg = Registry::start(AuthMode::None).unwrap();
        let work = tempfile::tempdir().unwrap();
        let key = Key::sigstore(work.path(), "cosign");
        let other = Key::openssl(work.path(), "other");
        Setup {
            reg,
            work,
            key,
            other,
        }
    }

    /// Pushes an image with one file `content` to `repo:tag`; returns its digest.
    fn image(&self, repo_tag: &str, content: &[u8]) -> String {
        self.image_desc(repo_tag, content).digest().to_string()
    }

    /// [`Setup::image`], returning the root descriptor.
    fn image_desc(&self, repo_tag: &str, content: &[u8]) -> Descriptor {
        let mut layout = OciLayout::new().unwrap();
        let built = layout
            .add_image(
                Some("v1"),
                &Platform::new("linux", "amd64"),
                &[("file", content)],
            )
            .unwrap();
        self.reg
            .push(layout.path(), "v1", repo_tag, Push::oci())
            .unwrap_or_else(|e| panic!("{e}\n{}", self.reg.log()));
        built.root
    }

    /// Pushes cosign's `.sig` attachment for the image `target` of `repo`: one layer, the
    /// payload naming `signed`, signed with `key`.
    fn attach_signature(&self, repo: &str, target: &str, signed: &str, key: &Key) {
        let host = self.reg.host();
        let body = payload(&format!("{host}/{repo}"), signed);
        let signature = key.sign(self.work.path(), &body);
        let tag = format!("{}.sig", target.replace(':', "-"));
        let name = format!("{host}/{repo}:{tag}");
        block_on(push_signature(&host, &name, &body, &signature));
    }

    fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.reg.host())
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn resolver(host: &str) -> DockerResolver {
    let options = ResolverOptions::default()
        .with_hosts(HostsConfig::new().with_plain_http(host))
        .with_credentials(Arc::new(Anonymous));
    DockerResolver::new(options)
}

/// Stores `bytes` as `media_type` in `store`.
async fn put(store: &LocalStore, media_type: &str, bytes: &[u8]) -> Descriptor {
    let digest = dist::content::sha256_of(bytes);
    let desc = Descriptor::new(MediaType::from(media_type), bytes.len() as u64, digest);
    let reference = format!("t-{}", desc.digest());
    dist::content::write_blob(store, &reference, &desc, bytes)
        .await
        .unwrap();
    desc
}

/// Pushes an artifact of `artifact_type` whose subject is `subject` to `repo` by digest,
/// then records it in the fallback index (a no-op where the registry has the API).
async fn push_artifact(host: &str, repo: &str, subject: &Descriptor, artifact_type: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("content")).unwrap();
    let empty = put(&store, "application/vnd.oci.empty.v1+json", b"{}").await;
    let layer = put(&store, artifact_type, artifact_type.as_bytes()).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": artifact_type,
        "config": empty,
        "layers": [layer],
        "subject": subject,
    }))
    .unwrap();
    let desc = put(
        &store,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    )
    .await;
    let r = resolver(host);
    let name = format!("{host}/{repo}@{}", desc.digest());
    let pusher = r.pusher(&name).await.unwrap();
    for d in [&empty, &layer, &desc] {
        pusher.push(d, &store).await.unwrap();
    }
    let referrers = r.referrers(&name).await.unwrap();
    referrers.update_fallback(&desc, &manifest).await.unwrap();
}

/// Stores the payload, a cosign-style config and the signature manifest, and pushes them
/// to `name` with the library's pusher.
async fn push_signature(host: &str, name: &str, body: &[u8], signature: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("content")).unwrap();
    let mut layer = put(&store, SIMPLE_SIGNING, body).await;
    let config = json!({
        "architecture": "", "os": "", "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "rootfs": {"type": "layers", "diff_ids": [layer.digest()]},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config = put(&store, "application/vnd.oci.image.config.v1+json", &config).await;
    let blobs = [config.clone(), layer.clone()];
    layer.set_annotations(Some(
        [(
            "dev.cosignproject.cosign/signature".to_string(),
            signature.to_string(),
        )]
        .into(),
    ));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer],
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let manifest = put(
        &store,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    )
    .await;

    let pusher = resolver(host).pusher(name).await.unwrap();
    for d in blobs.iter().chain([&manifest]) {
        pusher.push(d, &store).await.unwrap();
    }
}

/// Asserts a refused pull left nothing: no blob, no snapshot, no image record.
fn assert_nothing_left(dist: &Dist, reference: &str) {
    assert!(
        dist.verified_blobs().is_empty(),
        "{:?}",
        dist.verified_blobs()
    );
    assert_eq!(dist.snapshot_count(), 0);
    let images = dist.ok(&["images"]);
    assert!(!images.contains(reference), "{images}");
}

#[test]
fn a_signed_image_pulls_with_verify_key() {
    let s = Setup::new();
    let digest = s.image("signed/app:v1", b"signed\n");
    s.attach_signature("signed/app", &digest, &digest, &s.key);
    let reference = s.reference("signed/app:v1");
    let dist = Dist::new();
    let key = s.key.public.to_str().unwrap();
    let top = dist.ok(&["pull", "--verify-key", key, &reference]);
    assert!(top.trim().starts_with("sha256:"), "{top}");
    assert_eq!(dist.snapshot_count(), 1);
    assert!(dist.ok(&["images"]).contains(&reference));
}

#[test]
fn an_unsigned_image_is_refused_with_nothing_unpacked() {
    let s = Setup::new();
    s.image("unsigned/app:v1", b"unsigned\n");
    let reference = s.reference("unsigned/app:v1");
    let dist = Dist::new();
    let err = dist.fails(
        &[
            "pull",
            "--verify-key",
            s.key.public.to_str().unwrap(),
            &reference,
        ],
        None,
    );
    assert!(err.contains("unsigned"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_nothing_left(&dist, &reference);
}

#[test]
fn an_image_signed_with_another_key_is_refused_with_nothing_unpacked() {
    let s = Setup::new();
    let digest = s.image("other/app:v1", b"other key\n");
    s.attach_signature("other/app", &digest, &digest, &s.other);
    let reference = s.reference("other/app:v1");
    let dist = Dist::new();
    let err = dist.fails(
        &[
            "pull",
            "--verify-key",
            s.key.public.to_str().unwrap(),
            &reference,
        ],
        None,
    );
    assert!(err.contains("trusted key"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_nothing_left(&dist, &reference);
}

#[test]
fn a_retagged_image_carrying_another_images_signature_is_refused() {
    let s = Setup::new();
    // The signed image, and another image the tag is moved to.
    let good = s.image("swap/app:good", b"the signed one\n");
    let evil = s.image("swap/app:v1", b"the swapped one\n");
    // The signature of `good`, copied to where `evil`'s signature would be.
    s.attach_signature("swap/app", &evil, &good, &s.key);
    let reference = s.reference("swap/app:v1");
    let dist = Dist::new();
    let err = dist.fails(
        &[
            "pull",
            "--verify-key",
            s.key.public.to_str().unwrap(),
            &reference,
        ],
        None,
    );
    assert!(err.contains(&good) && err.contains(&evil), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_nothing_left(&dist, &reference);
}

#[test]
fn dist_referrers_lists_an_images_artifacts_and_filters_them_by_type() {
    let s = Setup::new();
    let image = s.image_desc("refs/app:v1", b"referred to\n");
    let host = s.reg.host();
    block_on(async {
        push_artifact(&host, "refs/app", &image, "application/spdx+json").await;
        push_artifact(&host, "refs/app", &image, "application/vnd.example.sig").await;
    });
    let reference = s.reference("refs/app:v1");
    let dist = Dist::new();
    let all = dist.ok(&["referrers", &reference]);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 2, "{all}");
    for line in &lines {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert!(fields[0].starts_with("sha256:"), "{line}");
        assert!(fields[2].parse::<u64>().is_ok(), "{line}");
    }
    let sboms = dist.ok(&[
        "referrers",
        "--artifact-type",
        "application/spdx+json",
        &reference,
    ]);
    assert_eq!(sboms.lines().count(), 1, "{sboms}");
    assert!(sboms.contains("\tapplication/spdx+json\t"), "{sboms}");
    let none = dist.ok(&[
        "referrers",
        "--artifact-type",
        "application/x-none",
        &reference,
    ]);
    assert!(none.is_empty(), "{none}");
}
