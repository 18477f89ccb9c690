//! [`DockerPusher`]: existence checks, monolithic blob uploads and manifest PUTs.

use std::sync::Arc;

use async_trait::async_trait;
use dist_content::{Elided, Provider, ReaderAt};
use oci_spec::image::{Descriptor, Digest};
use reqwest::header::LOCATION;
use reqwest::{Method, Response, StatusCode};

use super::client::{Payload, Repository, Request, UploadProgress};
use super::mount::{Mount, mount_sources};
use super::resolve::header_digest;
use super::upload_state::StateFile;
use crate::hosts::Capabilities;
use crate::{Error, PushOutcome, Pusher, Result};

/// Bytes read from the provider per chunk of a streamed upload: the whole blob is never
/// held in memory.
const CHUNK: usize = 256 * 1024;

/// Pushes to one repository of a Docker/OCI registry (from
/// [`DockerResolver::pusher`](crate::Resolver::pusher)).
///
/// Blobs are checked with `HEAD` and skipped when present. A blob whose descriptor names
/// source repositories on the same registry (the
/// [`DISTRIBUTION_SOURCE_PREFIX`](crate::DISTRIBUTION_SOURCE_PREFIX) annotation) is
/// mounted from them when the registry can (`PushOutcome::Mounted`). Otherwise it is
/// uploaded in one streamed `PUT` after a `POST` that opens the upload, or, with a chunk
/// size ([`UploadOptions`](crate::UploadOptions) or the host's `upload_chunk_size`), in
/// `PATCH` chunks that resume from the registry's offset after a failure and, with a state
/// directory, across processes. Manifests and indexes are `PUT` with their
/// exact stored bytes and their media type as `Content-Type`, under the tag of the name the
/// pusher was made for, or under their digest. Requests ask for `push,pull` scope and are
/// sent to the registry itself (endpoints that can resolve), not to pull-only mirrors.
pub struct DockerPusher {
    pub(super) repo: Arc<Repository>,
    tag: Option<String>,
    /// `PATCH` chunk size when uploads are chunked (the host's, else the resolver's).
    chunk_size: Option<u64>,
}

impl std::fmt::Debug for DockerPusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerPusher")
            .field("registry", &self.repo.registry)
            .field("repository", &self.repo.name)
            .field("tag", &self.tag)
            .field("chunk_size", &self.chunk_size)
            .finish()
    }
}

/// Endpoints a push may go to: the registry itself, never a pull-only mirror.
fn origin(c: &Capabilities) -> bool {
    c.resolve
}

impl DockerPusher {
    pub(crate) fn new(repo: Arc<Repository>, tag: Option<String>) -> Self {
        // The hosts configuration does no I/O; the endpoint a push goes to first decides.
        let per_host = repo
            .shared
            .opts
            .hosts
            .hosts(&repo.registry)
            .ok()
            .and_then(|hosts| hosts.into_iter().find(|h| origin(&h.capabilities)))
            .and_then(|h| h.upload_chunk_size);
        let chunk_size = per_host.or(repo.shared.opts.upload.chunk_size);
        DockerPusher {
            repo,
            tag,
            chunk_size,
        }
    }

    pub(super) async fn send(&self, req: Request) -> Result<(String, Response)> {
        self.repo.send(origin, &req).await
    }

    pub(super) fn what(&self, reference: &str) -> String {
        format!("{}/{}@{reference}", self.repo.registry, self.repo.name)
    }

    /// Whether the registry has the blob `digest`.
    async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        let mut req = Request::new(Method::HEAD, format!("blobs/{digest}"));
        req.push = true;
        let (host, resp) = self.send(req).await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(unexpected(&host, &self.what(digest.as_ref()), s)),
        }
    }

    async fn push_blob(&self, desc: &Descriptor, provider: &dyn Provider) -> Result<PushOutcome> {
        let digest = desc.digest();
        if self.blob_exists(digest).await? {
            // A saved chunked upload of it (another push finished it) is of no more use.
            if let Some(dir) = &self.repo.shared.opts.upload.state_dir {
                StateFile::new(dir, &self.repo.registry, &self.repo.name, digest)
                    .remove()
                    .await;
            }
            return Ok(PushOutcome::AlreadyPresent);
        }
        // A mount answered 202 opened an upload: it is the one used, not a second.
        let mut opened = None;
        for from in mount_sources(desc, &self.repo.registry, &self.repo.name) {
            match self.mount(digest, &from).await? {
                Mount::Mounted => return Ok(PushOutcome::Mounted),
                Mount::Opened(o) => {
                    opened = Some(o);
                    break;
                }
                Mount::Refused => {}
            }
        }
        if let Some(chunk) = self.chunk_size {
            return self
                .push_chunked(desc, provider, chunk, opened)
                .await
                .map(|()| PushOutcome::Pushed);
        }
        // A monolithic upload cannot continue where a failed one stopped: a transient
        // failure (a 5xx, a reset, a token refreshed after the body went) starts it over.
        let policy = &self.repo.shared.opts.retry;
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            match self.upload(desc, provider, opened.take()).await {
                Err(e) if e.is_transient() && attempt < policy.max_attempts => {
                    tracing::debug!(digest = %digest, attempt, error = %e, "upload again");
                    tokio::time::sleep(policy.backoff(attempt)).await;
                }
                other => return other.map(|()| PushOutcome::Pushed),
            }
        }
    }

    /// Opens an upload session with `POST blobs/uploads/`.
    pub(super) async fn open(&self, what: &str) -> Result<Opened> {
        let mut post = Request::new(Method::POST, "blobs/uploads/".to_string());
        post.push = true;
        let (host, resp) = self.send(post).await?;
        if !matches!(resp.status(), StatusCode::ACCEPTED | StatusCode::CREATED) {
            return Err(unexpected(&host, what, resp.status()));
        }
        opened(&host, what, &resp)
    }

    /// One monolithic upload: `POST` to open it (unless a mount already did), then one
    /// streamed `PUT` of the blob.
    async fn upload(
        &self,
        desc: &Descriptor,
        provider: &dyn Provider,
        opened: Option<Opened>,
    ) -> Result<()> {
        let digest = desc.digest();
        let reader = sized_reader(desc, provider).await?;
        let what = self.what(digest.as_ref());
        let opened = match opened {
            Some(o) => o,
            None => self.open(&what).await?,
        };
        let url = with_digest(opened.url, digest);

        let progress = Arc::new(UploadProgress::new());
        let stream = read_stream(reader, 0, desc.size(), progress.clone());
        let body = reqwest::Body::wrap_stream(stream);
        let mut put = Request::new(Method::PUT, String::new());
        put.url = Some(url.to_string());
        put.push = true;
        put.body = Some(Payload::Once(
            Arc::new(std::sync::Mutex::new(Some(body))),
            desc.size(),
            progress,
        ));
        // A 5xx comes back as `Unavailable` (the retry policy's statuses, with one attempt
        // for a streamed body), so the caller starts over.
        let (host, resp) = self.send(put).await?;
        finish(&host, &what, resp, digest).await
    }

    async fn push_manifest(
        &self,
        desc: &Descriptor,
        provider: &dyn Provider,
    ) -> Result<PushOutcome> {
        let digest = desc.digest();
        let reference = self.tag.clone().unwrap_or_else(|| digest.to_string());
        let what = self.what(&reference);
        let media_type = desc.media_type().to_string();

        let mut head = Request::new(Method::HEAD, format!("manifests/{reference}"));
        head.push = true;
        head.accept = Some(media_type.clone());
        let (host, resp) = self.send(head).await?;
        match resp.status() {
            // By digest, presence is enough; by tag, the tag must already name this digest.
            StatusCode::OK => {
                let served = header_digest(resp.headers(), &host)?;
                if self.tag.is_none() || served.as_ref() == Some(digest) {
                    return Ok(PushOutcome::AlreadyPresent);
                }
            }
            StatusCode::NOT_FOUND => {}
            s => return Err(unexpected(&host, &what, s)),
        }

        let max = self.repo.shared.opts.max_manifest_size;
        let bytes = dist_content::read_blob(provider, desc, max).await?;
        let mut put = Request::new(Method::PUT, format!("manifests/{reference}"));
        put.push = true;
        let bytes = bytes::Bytes::from(bytes);
        put.body = Some(Payload::Bytes(bytes.clone(), media_type));
        let (host, resp) = self.send(put).await?;
        // A registry with the referrers API says it recorded the subject; without that
        // header, a manifest with a `subject` is added to the `sha256-<hex>` tag index.
        let subject_recorded = resp.headers().contains_key("oci-subject");
        finish(&host, &what, resp, digest).await?;
        if !subject_recorded {
            super::referrers::DockerReferrers::new(self.repo.clone())
                .update_fallback(desc, &bytes)
                .await?;
        }
        Ok(PushOutcome::Pushed)
    }
}

#[async_trait]
impl Pusher for DockerPusher {
    async fn push(&self, desc: &Descriptor, provider: &dyn Provider) -> Result<PushOutcome> {
        if dist_images::media_types::is_manifest_or_index(desc.media_type()) {
            self.push_manifest(desc, provider).await
        } else {
            self.push_blob(desc, provider).await
        }
    }
}

/// An upload session the registry opened, with its `OCI-Chunk-Min-Length` when it sent one.
#[derive(Debug)]
pub(super) struct Opened {
    /// The upload `Location`, resolved against the URL that answered.
    pub(super) url: url::Url,
    pub(super) min_chunk: Option<u64>,
}

/// The session a `POST` (or mount) answered with: its `Location` and chunk minimum.
pub(super) fn opened(host: &str, what: &str, resp: &Response) -> Result<Opened> {
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| Error::protocol(host, format!("{what}: upload without Location")))?;
    let url = resp
        .url()
        .join(location)
        .map_err(|e| Error::protocol_from(host, format!("{what}: bad upload Location"), e))?;
    let min_chunk = resp
        .headers()
        .get("OCI-Chunk-Min-Length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    Ok(Opened { url, min_chunk })
}

/// The provider's reader for `desc`, checked to hold exactly `desc.size()` bytes.
pub(super) async fn sized_reader(
    desc: &Descriptor,
    provider: &dyn Provider,
) -> Result<Arc<dyn ReaderAt>> {
    let reader = provider.reader_at(desc).await?;
    if reader.size() != desc.size() {
        return Err(Error::mismatch(
            desc.digest().to_string(),
            format!(
                "the provider holds {} bytes, the descriptor says {}",
                reader.size(),
                desc.size()
            ),
        ));
    }
    Ok(Arc::from(reader))
}

/// The URL that completes an upload: the session's URL (its query state kept) with
/// `digest` appended.
pub(super) fn with_digest(mut url: url::Url, digest: &Digest) -> url::Url {
    url.query_pairs_mut().append_pair("digest", digest.as_ref());
    url
}

/// The URL that completes a monolithic upload: `location` resolved against the URL that
/// answered (it may be relative or absolute), its query state kept, `digest` appended.
#[cfg(test)]
fn upload_url(
    base: &url::Url,
    location: &str,
    digest: &Digest,
) -> std::result::Result<url::Url, url::ParseError> {
    Ok(with_digest(base.join(location)?, digest))
}

/// Checks the answer to a completing `PUT`: a success status (registries answer 201, some
/// 202 or 204) and, when the registry names a digest, the one that was pushed.
///
/// A refusal carries the registry's error code (`MANIFEST_BLOB_UNKNOWN`, `DIGEST_INVALID`,
/// …) for callers to branch on.
pub(super) async fn finish(host: &str, what: &str, resp: Response, digest: &Digest) -> Result<()> {
    if !matches!(
        resp.status(),
        StatusCode::CREATED | StatusCode::ACCEPTED | StatusCode::NO_CONTENT | StatusCode::OK
    ) {
        return Err(super::errcode::unexpected_response(host, what, resp).await);
    }
    match header_digest(resp.headers(), host)? {
        Some(d) if d != *digest => Err(Error::mismatch(
            what.to_string(),
            format!("registry stored it as {d}"),
        )),
        _ => Ok(()),
    }
}

pub(super) fn unexpected(host: &str, what: &str, status: StatusCode) -> Error {
    match status {
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Error::Unauthorized {
            host: host.to_string(),
            reason: format!("{}: {status}", Elided(what)),
        },
        s => Error::protocol(host, format!("{}: unexpected {s}", Elided(what))),
    }
}

/// The provider's bytes `start..end` as a stream of `CHUNK`-sized pieces; a reader that
/// ends early is an error, so the registry never sees a short body as complete.
pub(super) fn read_stream(
    reader: Arc<dyn ReaderAt>,
    start: u64,
    end: u64,
    progress: Arc<UploadProgress>,
) -> impl futures::Stream<Item = std::result::Result<bytes::Bytes, dist_content::Error>> + Send + 'static
{
    futures::stream::try_unfold((reader, start), move |(reader, offset)| {
        let progress = progress.clone();
        async move {
            if offset >= end {
                progress.advanced(true);
                return Ok(None);
            }
            let left = usize::try_from(end.saturating_sub(offset)).unwrap_or(CHUNK);
            let mut buf = vec![0u8; left.min(CHUNK)];
            let n = reader.read_at(&mut buf, offset).await?;
            if n == 0 {
                return Err(dist_content::Error::InvalidArgument(format!(
                    "blob ended at {offset}, before {end}"
                )));
            }
            buf.truncate(n);
            let next = offset.saturating_add(n as u64);
            progress.advanced(next >= end);
            Ok(Some((bytes::Bytes::from(buf), (reader, next))))
        }
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn digest() -> Digest {
        Digest::from_str("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn base() -> url::Url {
        url::Url::parse("https://reg.example:5000/v2/app/blobs/uploads/")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn relative_location_joins_the_answering_origin() {
        let u = upload_url(&base(), "/v2/app/blobs/uploads/abc", &digest());
        assert_eq!(
            u.map(String::from),
            Ok(format!(
                "https://reg.example:5000/v2/app/blobs/uploads/abc?digest=sha256%3A{}",
                &digest().as_ref()[7..]
            ))
        );
    }

    #[test]
    fn absolute_location_is_kept_with_its_host() {
        let u = upload_url(&base(), "http://storage.example/up/1", &digest());
        let u = u.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.scheme(), "http");
        assert_eq!(u.host_str(), Some("storage.example"));
        assert_eq!(u.path(), "/up/1");
    }

    #[test]
    fn location_query_state_is_kept_and_digest_appended() {
        let u = upload_url(
            &base(),
            "/v2/app/blobs/uploads/abc?_state=xyz%3D&n=1",
            &digest(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let pairs: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            vec![
                ("_state".to_string(), "xyz=".to_string()),
                ("n".to_string(), "1".to_string()),
                ("digest".to_string(), digest().to_string()),
            ]
        );
    }
}
