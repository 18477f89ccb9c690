//! [`DockerReferrers`]: the referrers API (`GET /v2/<name>/referrers/<digest>`) with the
//! tag-schema fallback, and keeping the fallback index up to date after a push.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use dist_content::{Algorithm, Elided};
use dist_images::media_types::OCI_INDEX;
use futures::TryStreamExt;
use oci_spec::image::{Descriptor, Digest, ImageIndex, MediaType};
use reqwest::header::{CONTENT_TYPE, HeaderMap, LINK};
use reqwest::{Method, Response, StatusCode};

use super::client::{Payload, Repository, Request};
use super::resolve::{read_capped, resolve};
use super::{DockerFetcher, DockerResolver};
use crate::referrers::{MAX_REFERRERS_PAGES, filter_by_type, referrers_tag};
use crate::{Error, Fetcher, Referrers, Result};

/// The header a registry names the filters it applied to a referrers listing in.
const FILTERS_APPLIED: &str = "oci-filters-applied";

/// Endpoints trusted with a listing: the registry itself (what can resolve tags).
fn origin(c: &crate::Capabilities) -> bool {
    c.resolve
}

/// What [`DockerReferrers::update_fallback`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FallbackUpdate {
    /// The manifest has no `subject`: nothing refers to anything.
    NoSubject,
    /// The registry has the referrers API and keeps the listing itself.
    ApiSupported,
    /// The fallback index already listed the manifest.
    AlreadyListed,
    /// The manifest was added to the fallback index (created when there was none).
    Added,
}

/// [`Referrers`] of one repository of a Docker/OCI registry (from
/// [`DockerResolver::referrers`]).
///
/// A listing asks `GET /v2/<name>/referrers/<digest>` (with `artifactType` when filtering,
/// following `Link` pages up to [`MAX_REFERRERS_PAGES`], filtering itself unless the
/// registry says `OCI-Filters-Applied: artifactType`); a registry that answers `404` or
/// with anything but an index has no API, and the index tagged `sha256-<hex>` is read
/// instead (no such tag: no referrers).
pub struct DockerReferrers {
    repo: Arc<Repository>,
    fetcher: DockerFetcher,
}

impl std::fmt::Debug for DockerReferrers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerReferrers")
            .field("registry", &self.repo.registry)
            .field("repository", &self.repo.name)
            .finish()
    }
}

impl DockerResolver {
    /// The referrers and tag-schema attachments of the repository of `name`
    /// (`host/repo[:tag|@digest]`, as [`resolve`](crate::Resolver::resolve) returns it).
    pub async fn referrers(&self, name: &str) -> Result<DockerReferrers> {
        let (repo, _) = self.repository(name).await?;
        Ok(DockerReferrers::new(Arc::new(repo)))
    }
}

/// A listing page, or word that the registry has no referrers API.
enum Page {
    NoApi,
    Listed {
        descs: Vec<Descriptor>,
        filtered: bool,
        next: Option<String>,
    },
}

impl DockerReferrers {
    /// The referrers of `repo`: what [`DockerPusher`](super::DockerPusher) can build to
    /// call [`update_fallback`](Self::update_fallback) after a manifest `PUT` that came
    /// back without `OCI-Subject`.
    pub(crate) fn new(repo: Arc<Repository>) -> Self {
        DockerReferrers {
            fetcher: DockerFetcher::new(repo.clone()),
            repo,
        }
    }

    fn what(&self, reference: &str) -> String {
        format!("{}/{}@{reference}", self.repo.registry, self.repo.name)
    }

    /// One page of the referrers API: the first for `subject`, or the `next` URL.
    async fn page(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
        url: Option<String>,
    ) -> Result<Page> {
        let mut path = format!("referrers/{subject}");
        if let Some(t) = artifact_type {
            let t: String = url::form_urlencoded::byte_serialize(t.as_bytes()).collect();
            path = format!("{path}?artifactType={t}");
        }
        let mut req = Request::new(Method::GET, path);
        req.url = url;
        req.accept = Some(OCI_INDEX.to_string());
        let (host, resp) = self.repo.send(origin, &req).await?;
        let what = self.what(&format!("{subject} referrers"));
        match resp.status() {
            StatusCode::OK => {}
            // No such route (distribution 2.x), or a registry that refuses the method.
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => return Ok(Page::NoApi),
            s => return Err(unexpected(&host, &what, s)),
        }
        if !is_index_type(resp.headers()) {
            return Ok(Page::NoApi);
        }
        let filtered = artifact_type.is_some() && filters_applied(resp.headers());
        let next = next_link(&resp);
        let max = self.repo.shared.opts.max_manifest_size;
        let stall = self.repo.shared.opts.stall_timeout;
        let (body, _) = read_capped(resp, &what, max, stall, &host, Algorithm::Sha256).await?;
        let index: ImageIndex = serde_json::from_slice(&body).map_err(|e| {
            Error::protocol_from(&host, format!("{}: not an index", Elided(&what)), e)
        })?;
        Ok(Page::Listed {
            descs: index.manifests().clone(),
            filtered,
            next,
        })
    }

    /// The referrers API's full listing, or `None` when the registry has no API.
    async fn list_api(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Descriptor>>> {
        let mut all = Vec::new();
        let mut url = None;
        for _ in 0..MAX_REFERRERS_PAGES {
            match self.page(subject, artifact_type, url).await? {
                Page::NoApi if all.is_empty() => return Ok(None),
                // A later page that is not an index ends the listing where it is.
                Page::NoApi => break,
                Page::Listed {
                    mut descs,
                    filtered,
                    next,
                } => {
                    if !filtered {
                        filter_by_type(&mut descs, artifact_type);
                    }
                    all.append(&mut descs);
                    match next {
                        Some(n) => url = Some(n),
                        None => return Ok(Some(all)),
                    }
                }
            }
        }
        tracing::warn!(
            subject = %subject,
            pages = MAX_REFERRERS_PAGES,
            "referrers listing cut after too many pages"
        );
        Ok(Some(all))
    }

    /// The fallback index's entries (none when the tag does not exist), with its raw JSON.
    async fn list_tag(&self, subject: &Digest) -> Result<Option<(Vec<u8>, Vec<Descriptor>)>> {
        let Some(desc) = self.tagged(&referrers_tag(subject)).await? else {
            return Ok(None);
        };
        let max = self.repo.shared.opts.max_manifest_size;
        let bytes = self.fetch_bytes(&desc, max).await?;
        let index = dist_images::parse_index(&desc, &bytes).map_err(|e| {
            let what = self.what(&referrers_tag(subject));
            Error::protocol_from(
                &self.repo.registry,
                format!("{}: not an index", Elided(&what)),
                e,
            )
        })?;
        let descs = index.manifests().clone();
        Ok(Some((bytes, descs)))
    }

    /// Keeps the tag-schema fallback index of a pushed manifest's subject up to date: call
    /// it after pushing a manifest (`pushed`, with its exact `manifest` bytes).
    ///
    /// Nothing is done for a manifest without a `subject`, nor on a registry with the
    /// referrers API (it lists the manifest itself). Otherwise the index tagged
    /// `sha256-<subject hex>` is read (or started), the manifest added to it with its
    /// `artifactType` (its own, else its config's media type) and annotations unless
    /// already listed, and the index put back under the tag. Two pushers updating the same
    /// subject at once can lose one entry (the registry offers no compare-and-swap); the
    /// last writer wins, as with every client of the tag schema.
    pub async fn update_fallback(
        &self,
        pushed: &Descriptor,
        manifest: &[u8],
    ) -> Result<FallbackUpdate> {
        let actual = dist_content::Digester::for_digest(pushed.digest()).map(|mut h| {
            h.update(manifest);
            h.finish()
        })?;
        if actual != *pushed.digest() || manifest.len() as u64 != pushed.size() {
            return Err(Error::mismatch(
                pushed.digest().to_string(),
                format!(
                    "the manifest given is {} bytes hashing to {actual}",
                    manifest.len()
                ),
            ));
        }
        let probe: Probe = serde_json::from_slice(manifest).map_err(|e| {
            Error::protocol_from(
                &self.repo.registry,
                format!("{}: not a manifest", pushed.digest()),
                e,
            )
        })?;
        let Some(subject) = probe.subject else {
            return Ok(FallbackUpdate::NoSubject);
        };
        if self.list_api(&subject.digest, None).await?.is_some() {
            return Ok(FallbackUpdate::ApiSupported);
        }
        let mut index = match self.list_tag(&subject.digest).await? {
            Some((bytes, descs)) => {
                if descs.iter().any(|d| d.digest() == pushed.digest()) {
                    return Ok(FallbackUpdate::AlreadyListed);
                }
                serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| {
                    Error::protocol_from(&self.repo.registry, "fallback index is not JSON", e)
                })?
            }
            None => serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [],
            }),
        };
        let mut entry = Descriptor::new(
            pushed.media_type().clone(),
            pushed.size(),
            pushed.digest().clone(),
        );
        let artifact_type = probe.artifact_type.or(probe.config.map(|c| c.media_type));
        entry.set_artifact_type(artifact_type.map(|t| MediaType::from(t.as_str())));
        entry.set_annotations(probe.annotations.filter(|a| !a.is_empty()));
        let entry = serde_json::to_value(&entry)
            .map_err(|e| Error::protocol_from(&self.repo.registry, "encoding a descriptor", e))?;
        match index.get_mut("manifests") {
            Some(serde_json::Value::Array(list)) => list.push(entry),
            _ => {
                return Err(Error::protocol(
                    &self.repo.registry,
                    format!("fallback index of {} has no manifests list", subject.digest),
                ));
            }
        }
        let body = serde_json::to_vec(&index).map_err(|e| {
            Error::protocol_from(&self.repo.registry, "encoding the fallback index", e)
        })?;
        self.put_index(&referrers_tag(&subject.digest), body)
            .await?;
        Ok(FallbackUpdate::Added)
    }

    /// PUTs an index under `tag`.
    async fn put_index(&self, tag: &str, body: Vec<u8>) -> Result<()> {
        let mut put = Request::new(Method::PUT, format!("manifests/{tag}"));
        put.push = true;
        put.body = Some(Payload::Bytes(Bytes::from(body), OCI_INDEX.to_string()));
        let (host, resp) = self.repo.send(origin, &put).await?;
        match resp.status() {
            StatusCode::CREATED
            | StatusCode::OK
            | StatusCode::ACCEPTED
            | StatusCode::NO_CONTENT => Ok(()),
            s => Err(unexpected(&host, &self.what(tag), s)),
        }
    }
}

#[async_trait]
impl Referrers for DockerReferrers {
    async fn referrers(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        if let Some(listed) = self.list_api(subject, artifact_type).await? {
            return Ok(listed);
        }
        let mut descs = match self.list_tag(subject).await? {
            Some((_, descs)) => descs,
            None => Vec::new(),
        };
        filter_by_type(&mut descs, artifact_type);
        Ok(descs)
    }

    async fn tagged(&self, tag: &str) -> Result<Option<Descriptor>> {
        let reference = format!("{}/{}:{tag}", self.repo.registry, self.repo.name);
        match resolve(&self.repo, &reference, Some(tag), None).await {
            Ok(desc) => Ok(Some(desc)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn fetch_bytes(&self, desc: &Descriptor, max: u64) -> Result<Vec<u8>> {
        if desc.size() > max {
            return Err(Error::TooLarge {
                what: desc.digest().to_string(),
                size: desc.size(),
                limit: max,
            });
        }
        // The fetcher checks size and digest: the stream ends in an error otherwise.
        let chunks: Vec<Bytes> = self.fetcher.fetch(desc).await?.try_collect().await?;
        Ok(chunks.concat())
    }
}

/// The parts of a pushed manifest (or index) the fallback index entry is made from.
#[derive(serde::Deserialize)]
struct Probe {
    subject: Option<SubjectRef>,
    #[serde(rename = "artifactType")]
    artifact_type: Option<String>,
    config: Option<ConfigRef>,
    annotations: Option<HashMap<String, String>>,
}

#[derive(serde::Deserialize)]
struct SubjectRef {
    digest: Digest,
}

#[derive(serde::Deserialize)]
struct ConfigRef {
    #[serde(rename = "mediaType")]
    media_type: String,
}

/// Whether a response is an OCI index (what the referrers API answers with).
fn is_index_type(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim() == OCI_INDEX)
}

/// Whether the registry applied the `artifactType` filter itself.
fn filters_applied(headers: &HeaderMap) -> bool {
    headers
        .get_all(FILTERS_APPLIED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|f| f.trim() == "artifactType")
}

/// The `rel="next"` target of a `Link` header, resolved against the URL that answered.
fn next_link(resp: &Response) -> Option<String> {
    resp.headers()
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(parse_next)
        .and_then(|target| resp.url().join(&target).ok())
        .map(String::from)
}

/// `<target>; rel="next"` → `target`.
fn parse_next(link: &str) -> Option<String> {
    let mut parts = link.split(';');
    let target = parts.next()?.trim();
    let target = target.strip_prefix('<')?.strip_suffix('>')?;
    let next = parts.any(|p| {
        let p = p.trim();
        p == "rel=\"next\"" || p == "rel=next"
    });
    next.then(|| target.to_string())
}

fn unexpected(host: &str, what: &str, status: StatusCode) -> Error {
    match status {
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Error::Unauthorized {
            host: host.to_string(),
            reason: format!("{}: {status}", Elided(what)),
        },
        s => Error::protocol(host, format!("{}: unexpected {s}", Elided(what))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_next_link_is_read_with_or_without_quotes() {
        let link = "</v2/app/referrers/sha256:ab?n=2&last=x>; rel=\"next\"";
        assert_eq!(
            parse_next(link).as_deref(),
            Some("/v2/app/referrers/sha256:ab?n=2&last=x")
        );
        assert_eq!(
            parse_next("<https://r/x>; rel=next").as_deref(),
            Some("https://r/x")
        );
        assert_eq!(parse_next("<https://r/x>; rel=\"prev\""), None);
        assert_eq!(parse_next("https://r/x; rel=\"next\""), None);
    }

    #[test]
    fn only_an_artifact_type_filter_named_by_the_registry_counts_as_applied() {
        let mut h = HeaderMap::new();
        assert!(!filters_applied(&h));
        h.insert(
            FILTERS_APPLIED,
            "annotation, artifactType"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        assert!(filters_applied(&h));
        h.insert(
            FILTERS_APPLIED,
            "annotation".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        assert!(!filters_applied(&h));
    }
}
