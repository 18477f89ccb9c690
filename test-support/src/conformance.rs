//! The categories of the OCI distribution-spec conformance suite, as raw HTTP steps against a
//! registry on loopback (the Go suite cannot be built here).
//!
//! - **push**: monolithic `POST`+`PUT`; chunked `PATCH`es with `Content-Range`; a streamed
//!   `PATCH` without it; an out-of-order chunk; resuming through `GET` of the upload
//!   session; mounts with and without `from`, and of a missing blob; a manifest with no
//!   layers, and one naming a missing blob;
//! - **discovery**: tag listing with `n`/`last` and `Link`, the catalog;
//! - **management**: manifest (by digest), tag and blob deletes.
//!
//! Every step checks status, headers and bodies and fails with a [`Failure`] naming the
//! step. Where the two registries the tests run differ, [`Expectations`] writes it down;
//! each difference below was observed against the real servers, not taken from their docs:
//!
//! | behaviour | docker-registry 2.8.2 | ferro-oci-server 1.0 |
//! |---|---|---|
//! | a `PATCH` whose `Content-Range` skips ahead | `202`: the range is ignored and the bytes appended | `416` `BLOB_UPLOAD_INVALID` |
//! | `mount=` with `from=` a repository holding the blob | `201`: mounted | `202`: an upload session (no cross-repository mount) |
//! | tags `?n=`/`&last=` | ignored: every tag, unsorted, no `Link` | honoured: sorted pages with `Link` |
//! | `_catalog?n=` | honoured with `Link` (also after an exactly full last page) | honoured with `Link` |
//! | `DELETE manifests/<tag>` | `400` `DIGEST_INVALID` (tag deletes unsupported) | `405` `UNSUPPORTED` |
//! | tags of an unknown repository | `404` `NAME_UNKNOWN` | `200` with an empty list |
//! | the `{}` blob (OCI 1.1's empty descriptor) after `DELETE` | `404` | still served (`200`): it is always there |
//!
//! Both: `GET` of an upload session is `204` with `Range` and `Location` (on 2.8.2 only with
//! the newest `Location`: its `_state` query is checked, and an older one is `404`
//! `BLOB_UPLOAD_INVALID`); mount without `from` and mount of a missing blob are `202` with
//! an upload `Location`; a deleted manifest's digest and tags are `404` `MANIFEST_UNKNOWN`.

use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{Method, StatusCode};

use crate::hostile::sha256;

/// Which registry is under test, for the behaviours where they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Flavor {
    /// Debian's `docker-registry` (distribution 2.8.2), [`Registry`](crate::Registry).
    Distribution,
    /// `ferro-oci-server` 1.0, [`FerroRegistry`](crate::FerroRegistry).
    Ferro,
}

/// What a registry does where registries differ (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Expectations {
    /// A chunk starting past the session's offset is refused with `416`.
    pub out_of_order_chunk_refused: bool,
    /// A mount with `from` of a blob the source repository holds is done (`201`).
    pub mounts_across_repositories: bool,
    /// Tag listing honours `n` and `last` and sends `Link`.
    pub paginates_tags: bool,
    /// Status and code of `DELETE manifests/<tag>`.
    pub tag_delete: (u16, &'static str),
    /// Listing the tags of an unknown repository is `404` `NAME_UNKNOWN` (else an empty
    /// list).
    pub unknown_repository_is_404: bool,
}

impl Flavor {
    /// This registry's expectations.
    pub fn expectations(self) -> Expectations {
        match self {
            Flavor::Distribution => Expectations {
                out_of_order_chunk_refused: false,
                mounts_across_repositories: true,
                paginates_tags: false,
                tag_delete: (400, "DIGEST_INVALID"),
                unknown_repository_is_404: true,
            },
            Flavor::Ferro => Expectations {
                out_of_order_chunk_refused: true,
                mounts_across_repositories: false,
                paginates_tags: true,
                tag_delete: (405, "UNSUPPORTED"),
                unknown_repository_is_404: false,
            },
        }
    }
}

/// A conformance step that did not behave as expected.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {detail}")]
pub struct Failure {
    /// The step (`push/chunked`, `management/delete-manifest`).
    pub step: String,
    /// What was expected and what came.
    pub detail: String,
}

/// `Err(Failure)` from `step` unless `cond`.
macro_rules! check {
    ($step:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(Failure { step: $step.to_string(), detail: format!($($fmt)+) });
        }
    };
}

mod discovery;
mod management;
mod push;

/// One answer, read whole.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: impl reqwest::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first error code of a distribution-spec error body.
    fn code(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        Some(v.get("errors")?.get(0)?.get("code")?.as_str()?.to_string())
    }

    fn describe(&self) -> String {
        format!(
            "{} {}",
            self.status,
            String::from_utf8_lossy(self.body.get(..300).unwrap_or(&self.body))
        )
    }
}

/// The conformance steps against one registry (plain HTTP on loopback, no auth).
#[derive(Debug)]
pub struct Conformance {
    client: reqwest::Client,
    base: url::Url,
    flavor: Flavor,
    /// Prefix of the repositories this run creates, so runs do not meet.
    prefix: String,
}

/// The steps run by [`Conformance::run_all`], in order.
pub const STEPS: &[&str] = &[
    "push/monolithic",
    "push/chunked",
    "push/streamed",
    "push/out-of-order-chunk",
    "push/resume-from-session",
    "push/mount-from",
    "push/mount-without-from",
    "push/mount-missing-blob",
    "push/manifest-without-layers",
    "push/manifest-blob-unknown",
    "discovery/tags",
    "discovery/catalog",
    "management/delete-manifest",
    "management/delete-tag",
    "management/delete-blob",
];

impl Conformance {
    /// Steps against `host` (`127.0.0.1:<port>`), with `flavor`'s expectations, creating
    /// repositories under `prefix/`.
    pub fn new(host: &str, flavor: Flavor, prefix: &str) -> Result<Self, Failure> {
        let fail = |detail: String| Failure {
            step: "setup".into(),
            detail,
        };
        let base =
            url::Url::parse(&format!("http://{host}/v2/")).map_err(|e| fail(e.to_string()))?;
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| fail(e.to_string()))?;
        Ok(Conformance {
            client,
            base,
            flavor,
            prefix: prefix.to_string(),
        })
    }

    /// Runs every step of [`STEPS`]; the first failure stops the run.
    pub async fn run_all(&self) -> Result<(), Failure> {
        self.push().await?;
        self.discovery().await?;
        self.management().await
    }

    /// The push category.
    pub async fn push(&self) -> Result<(), Failure> {
        self.monolithic().await?;
        self.chunked().await?;
        self.streamed().await?;
        self.out_of_order_chunk().await?;
        self.resume_from_session().await?;
        self.mounts().await?;
        self.manifest_without_layers().await?;
        self.manifest_blob_unknown().await
    }

    /// The discovery category.
    pub async fn discovery(&self) -> Result<(), Failure> {
        self.tags().await?;
        self.catalog().await
    }

    /// The management category.
    pub async fn management(&self) -> Result<(), Failure> {
        self.delete_manifest().await?;
        self.delete_tag().await?;
        self.delete_blob().await
    }

    fn repo(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    async fn send(
        &self,
        step: &str,
        method: Method,
        url: &url::Url,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, Failure> {
        let mut rb = self.client.request(method.clone(), url.clone());
        for (k, v) in headers {
            rb = rb.header(*k, v.as_str());
        }
        rb = match body {
            Some(b) => rb.header(CONTENT_LENGTH, b.len()).body(b),
            None if method == Method::POST || method == Method::PUT => rb.header(CONTENT_LENGTH, 0),
            None => rb,
        };
        let fail = |detail: String| Failure {
            step: step.to_string(),
            detail,
        };
        let resp = rb
            .send()
            .await
            .map_err(|e| fail(format!("{method} {url}: {e}")))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| fail(format!("{method} {url}: body: {e}")))?;
        Ok(Answer {
            status,
            headers,
            body: body.to_vec(),
        })
    }

    fn url(&self, step: &str, path: &str) -> Result<url::Url, Failure> {
        self.base.join(path).map_err(|e| Failure {
            step: step.to_string(),
            detail: format!("{path}: {e}"),
        })
    }

    /// The absolute URL of `a`'s `Location` (relative on ferro, absolute on 2.8.2).
    fn location(&self, step: &str, a: &Answer) -> Result<url::Url, Failure> {
        let loc = a.header(LOCATION).unwrap_or_default().to_string();
        check!(step, !loc.is_empty(), "no Location: {}", a.describe());
        self.base.join(&loc).map_err(|e| Failure {
            step: step.to_string(),
            detail: format!("bad Location {loc}: {e}"),
        })
    }

    /// `POST blobs/uploads/` (with `query`): the answer.
    async fn post_upload(&self, step: &str, repo: &str, query: &str) -> Result<Answer, Failure> {
        let url = self.url(step, &format!("{repo}/blobs/uploads/{query}"))?;
        self.send(step, Method::POST, &url, &[], None).await
    }

    /// Opens an upload session: its `Location`.
    async fn open(&self, step: &str, repo: &str) -> Result<url::Url, Failure> {
        let a = self.post_upload(step, repo, "").await?;
        check!(
            step,
            a.status == StatusCode::ACCEPTED,
            "POST: {}",
            a.describe()
        );
        self.location(step, &a)
    }

    /// `PATCH`es `chunk` (with `Content-Range` from `start` when given): the answer.
    async fn patch(
        &self,
        step: &str,
        at: &url::Url,
        chunk: &[u8],
        start: Option<usize>,
    ) -> Result<Answer, Failure> {
        let mut headers = vec![(CONTENT_TYPE.as_str(), "application/octet-stream".into())];
        if let Some(s) = start {
            let end = s.saturating_add(chunk.len()).saturating_sub(1);
            headers.push((CONTENT_RANGE.as_str(), format!("{s}-{end}")));
        }
        self.send(step, Method::PATCH, at, &headers, Some(chunk.to_vec()))
            .await
    }

    /// Closes a session with `PUT ?digest=` (and `body`), checks `201` and the digest.
    async fn close(
        &self,
        step: &str,
        at: &url::Url,
        digest: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(), Failure> {
        let mut url = at.clone();
        url.query_pairs_mut().append_pair("digest", digest);
        let headers = [(
            CONTENT_TYPE.as_str(),
            "application/octet-stream".to_string(),
        )];
        let a = self.send(step, Method::PUT, &url, &headers, body).await?;
        check!(
            step,
            a.status == StatusCode::CREATED,
            "PUT ?digest=: {}",
            a.describe()
        );
        let got = a.header("docker-content-digest");
        check!(
            step,
            got == Some(digest),
            "Docker-Content-Digest {got:?}, want {digest}"
        );
        Ok(())
    }

    /// Checks `HEAD blobs/<digest>` is `want` (with `size` when found).
    async fn head_blob(
        &self,
        step: &str,
        repo: &str,
        digest: &str,
        want: Option<usize>,
    ) -> Result<(), Failure> {
        let url = self.url(step, &format!("{repo}/blobs/{digest}"))?;
        let a = self.send(step, Method::HEAD, &url, &[], None).await?;
        match want {
            Some(size) => {
                check!(
                    step,
                    a.status == StatusCode::OK,
                    "HEAD blob: {}",
                    a.describe()
                );
                let len = a
                    .header(CONTENT_LENGTH)
                    .and_then(|l| l.parse::<usize>().ok());
                check!(
                    step,
                    len == Some(size),
                    "HEAD blob length {len:?}, want {size}"
                );
            }
            None => check!(
                step,
                a.status == StatusCode::NOT_FOUND,
                "HEAD blob: {}",
                a.describe()
            ),
        }
        Ok(())
    }

    /// Pushes `bytes` monolithically into `repo`: its digest.
    async fn put_blob(&self, step: &str, repo: &str, bytes: &[u8]) -> Result<String, Failure> {
        let digest = sha256(bytes);
        let at = self.open(step, repo).await?;
        self.close(step, &at, &digest, Some(bytes.to_vec())).await?;
        Ok(digest)
    }

    /// Pushes the `{}` config and a manifest without layers under `tag`: the manifest's
    /// digest.
    async fn put_manifest(
        &self,
        step: &str,
        repo: &str,
        tag: &str,
        note: &str,
    ) -> Result<String, Failure> {
        let config = self.put_blob(step, repo, b"{}").await?;
        let manifest = empty_manifest(&config, note);
        let url = self.url(step, &format!("{repo}/manifests/{tag}"))?;
        let headers = [(CONTENT_TYPE.as_str(), OCI_MANIFEST.to_string())];
        let a = self
            .send(step, Method::PUT, &url, &headers, Some(manifest.clone()))
            .await?;
        check!(
            step,
            a.status == StatusCode::CREATED,
            "PUT manifest: {}",
            a.describe()
        );
        let digest = sha256(&manifest);
        let got = a.header("docker-content-digest");
        check!(
            step,
            got == Some(digest.as_str()),
            "manifest digest {got:?}, want {digest}"
        );
        let a = self.get_manifest(step, repo, tag).await?;
        check!(
            step,
            a.status == StatusCode::OK,
            "GET manifest: {}",
            a.describe()
        );
        check!(
            step,
            a.body == manifest,
            "GET manifest: other bytes than were put"
        );
        check!(
            step,
            a.header(CONTENT_TYPE) == Some(OCI_MANIFEST),
            "GET manifest type"
        );
        Ok(digest)
    }

    /// Pushes `bytes` as a blob to `repo` (the full name) with a monolithic upload: its
    /// digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> Result<String, Failure> {
        self.put_blob("setup", repo, bytes).await
    }

    /// Pushes a manifest without layers (and its `{}` config) to `repo` (the full name,
    /// not under the prefix) as `tag`, for tests that need tags: its digest.
    pub async fn push_empty_image(&self, repo: &str, tag: &str) -> Result<String, Failure> {
        self.put_manifest("setup", repo, tag, tag).await
    }

    async fn get_manifest(
        &self,
        step: &str,
        repo: &str,
        reference: &str,
    ) -> Result<Answer, Failure> {
        let url = self.url(step, &format!("{repo}/manifests/{reference}"))?;
        let headers = [("accept", OCI_MANIFEST.to_string())];
        self.send(step, Method::GET, &url, &headers, None).await
    }
}

/// The OCI image manifest media type.
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A manifest of the `{}` config `config` and no layers, made unique by `note`.
fn empty_manifest(config: &str, note: &str) -> Vec<u8> {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config,
            "size": 2
        },
        "layers": [],
        "annotations": { "note": note }
    })
    .to_string()
    .into_bytes()
}

/// The strings of `field` in a JSON body (`tags`, `repositories`); none when absent.
fn list(body: &[u8], field: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v.get(field)
        .and_then(|t| t.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
