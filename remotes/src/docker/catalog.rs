//! Discovery and management of a registry's repositories: tag lists and the `_catalog`
//! (following `Link` pagination), blob and manifest existence, and deletes.

use std::sync::Arc;

use dist_content::{Algorithm, Elided};
use oci_spec::image::{Descriptor, Digest, MediaType};
use reqwest::header::LINK;
use reqwest::{Method, Response, StatusCode};

use super::DockerResolver;
use super::client::{Repository, Request};
use super::errcode::unexpected_response;
use super::resolve::{content_length, read_capped};
use crate::hosts::Capabilities;
use crate::{Error, ErrorKind, Result};

/// Bounds on listing tags or repositories across pages.
///
/// A registry decides how many entries a page holds (`n` is a request it may ignore:
/// distribution 2.8 returns every tag at once) and how many pages follow; these bounds keep
/// a hostile or broken one from holding the client forever or filling its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListOptions {
    /// Entries asked for per page (`?n=`); `None` lets the registry choose.
    pub page_size: Option<u32>,
    /// Most pages followed (1000); more is an error rather than a silent truncation.
    pub max_pages: u32,
    /// Most bytes of one page's body (4 MiB).
    pub max_page_bytes: u64,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            page_size: None,
            max_pages: 1000,
            max_page_bytes: 4 * 1024 * 1024,
        }
    }
}

impl ListOptions {
    /// Asks for `n` entries per page.
    pub fn with_page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n);
        self
    }

    /// Sets the most pages followed (at least 1).
    pub fn with_max_pages(mut self, n: u32) -> Self {
        self.max_pages = n.max(1);
        self
    }

    /// Sets the most bytes of one page's body.
    pub fn with_max_page_bytes(mut self, n: u64) -> Self {
        self.max_page_bytes = n;
        self
    }
}

/// One repository on a registry, for discovery and management: list its tags, ask whether
/// a blob or manifest is there, delete manifests, tags and blobs.
///
/// From [`DockerResolver::registry_repository`]; it shares the resolver's endpoints,
/// credentials, retries and timeouts. Requests go to the registry itself (endpoints that
/// can resolve), never to pull-only mirrors. Refusals are [`Error::Registry`] with the
/// registry's [`ErrorCode`](crate::ErrorCode), so a caller branches on the code:
///
/// ```
/// use dist_remotes::{DockerResolver, ErrorCode, HostsConfig, ListOptions, ResolverOptions};
/// use dist_test_support::{AuthMode, Registry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = Registry::start(AuthMode::None)?;
/// let options = ResolverOptions::default()
///     .with_credentials(std::sync::Arc::new(dist_remotes::Anonymous))
///     .with_hosts(HostsConfig::new().with_plain_http(registry.host()));
/// let resolver = DockerResolver::new(options);
///
/// let repo = resolver
///     .registry_repository(&format!("{}/nobody/here", registry.host()))
///     .await?;
/// // No manifest under that tag: existence is `None`, not an error.
/// assert!(repo.head_manifest("v1").await?.is_none());
/// // A repository the registry has never seen: distribution says NAME_UNKNOWN (another
/// // registry may answer with an empty list instead).
/// match repo.tags(&ListOptions::default()).await {
///     Err(e) if e.code() == Some(&ErrorCode::NameUnknown) => {}
///     Ok(tags) => assert!(tags.is_empty()),
///     Err(e) => return Err(e.into()),
/// }
/// // The registry's repositories, every page of the catalog.
/// let all = resolver.catalog(&registry.host(), &ListOptions::default()).await?;
/// assert!(all.is_empty());
/// # Ok(())
/// # }
/// ```
pub struct RegistryRepository {
    repo: Arc<Repository>,
}

impl std::fmt::Debug for RegistryRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryRepository")
            .field("registry", &self.repo.registry)
            .field("repository", &self.repo.name)
            .finish()
    }
}

/// Endpoints discovery and management go to: the registry itself.
fn origin(c: &Capabilities) -> bool {
    c.resolve
}

impl DockerResolver {
    /// The repository `name` (`registry/path`, without tag or digest) for discovery and
    /// management.
    pub async fn registry_repository(&self, name: &str) -> Result<RegistryRepository> {
        let (repo, spec) = self.repository(name).await?;
        if spec.tag().is_some() || spec.digest().is_some() {
            return Err(Error::invalid_reference(
                name,
                "a repository name has no tag or digest",
                None,
            ));
        }
        Ok(RegistryRepository {
            repo: Arc::new(repo),
        })
    }

    /// Every repository of the registry `host` (`GET /v2/_catalog`), following `Link`
    /// pagination within `options`' bounds. Registries may refuse the catalog (it needs
    /// `registry:catalog:*` scope, which hosted registries rarely grant).
    pub async fn catalog(&self, host: &str, options: &ListOptions) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        let repo = Repository::new(self.shared.clone(), host, String::new()).await?;
        let mut first = Request::new(Method::GET, with_page_size("_catalog", options));
        first.root = true;
        first.scope = Some("registry:catalog:*".to_string());
        list(&repo, first, options, "_catalog", |body| {
            serde_json::from_slice::<Page>(body).map(|p| p.repositories.unwrap_or_default())
        })
        .await
    }
}

impl RegistryRepository {
    /// The registry host, as written in references.
    pub fn registry(&self) -> &str {
        &self.repo.registry
    }

    /// The repository path (`library/redis`).
    pub fn name(&self) -> &str {
        &self.repo.name
    }

    /// Every tag (`GET tags/list`), following `Link` pagination with `n` and `last` within
    /// `options`' bounds, in the order the registry lists them (the spec says lexical;
    /// distribution 2.8 does not sort). A repository the registry does not know is an error
    /// with [`ErrorCode::NameUnknown`](crate::ErrorCode::NameUnknown) on distribution and
    /// an empty list on others.
    pub async fn tags(&self, options: &ListOptions) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let first = Request::new(Method::GET, with_page_size("tags/list", options));
        let what = format!("{}/{} tags", self.repo.registry, self.repo.name);
        list(&self.repo, first, options, &what, |body| {
            serde_json::from_slice::<Page>(body).map(|p| p.tags.unwrap_or_default())
        })
        .await
    }

    /// The blob's descriptor (`application/octet-stream`, the registry's size) when the
    /// repository has it (`HEAD blobs/<digest>`), `None` when it does not.
    pub async fn head_blob(&self, digest: &Digest) -> Result<Option<Descriptor>> {
        let req = Request::new(Method::HEAD, format!("blobs/{digest}"));
        let (host, resp) = self.repo.send(origin, &req).await?;
        match resp.status() {
            s if s.is_success() => {
                let size = content_length(resp.headers()).ok_or_else(|| {
                    Error::protocol(&host, format!("HEAD blobs/{digest}: no Content-Length"))
                })?;
                Ok(Some(Descriptor::new(
                    MediaType::Other("application/octet-stream".to_string()),
                    size,
                    digest.clone(),
                )))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(unexpected_response(&host, &format!("HEAD blobs/{digest}"), resp).await),
        }
    }

    /// The descriptor (digest, size, media type) of the manifest under `reference` (a tag
    /// or a digest) when there is one, `None` when there is not. It is resolved as
    /// [`Resolver::resolve`](crate::Resolver::resolve) does: `HEAD`, then `GET` (hashed)
    /// when the `HEAD` lacks a digest.
    pub async fn head_manifest(&self, reference: &str) -> Result<Option<Descriptor>> {
        let is_digest = reference.contains(':');
        let (tag, digest) = if is_digest {
            (None, Some(reference))
        } else {
            (Some(reference), None)
        };
        let what = format!("{}/{}:{reference}", self.repo.registry, self.repo.name);
        match super::resolve::resolve(&self.repo, &what, tag, digest).await {
            Ok(desc) => Ok(Some(desc)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the manifest `digest` (`DELETE manifests/<digest>`), and with it the tags
    /// that point to it. A registry that does not allow deletes answers with
    /// [`ErrorCode::Unsupported`](crate::ErrorCode::Unsupported) (distribution with
    /// `storage.delete` off); one that does not have it, with
    /// [`ErrorCode::ManifestUnknown`](crate::ErrorCode::ManifestUnknown).
    pub async fn delete_manifest(&self, digest: &Digest) -> Result<()> {
        self.delete(format!("manifests/{digest}")).await
    }

    /// Deletes the tag `tag` only (`DELETE manifests/<tag>`, OCI 1.1), leaving the
    /// manifest. Few registries allow it: ferro-oci-server answers `405`
    /// [`ErrorCode::Unsupported`](crate::ErrorCode::Unsupported), distribution 2.8 `400`
    /// [`ErrorCode::DigestInvalid`](crate::ErrorCode::DigestInvalid).
    pub async fn delete_tag(&self, tag: &str) -> Result<()> {
        if tag.contains(':') || tag.contains('/') || tag.is_empty() {
            return Err(Error::invalid_reference(tag, "not a tag", None));
        }
        self.delete(format!("manifests/{tag}")).await
    }

    /// Deletes the blob `digest` from the repository (`DELETE blobs/<digest>`).
    pub async fn delete_blob(&self, digest: &Digest) -> Result<()> {
        self.delete(format!("blobs/{digest}")).await
    }

    async fn delete(&self, path: String) -> Result<()> {
        let mut req = Request::new(Method::DELETE, path);
        req.scope = Some(format!("repository:{}:delete", self.repo.name));
        let (host, resp) = self.repo.send(origin, &req).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(unexpected_response(&host, &format!("DELETE {}", req.path), resp).await)
    }
}

/// `path` with `?n=` when a page size is asked for.
fn with_page_size(path: &str, options: &ListOptions) -> String {
    match options.page_size {
        Some(n) => format!("{path}?n={n}"),
        None => path.to_string(),
    }
}

/// GETs `first`, then every page its `Link: <…>; rel="next"` names, parsing each page with
/// `parse`. A `Link` to another origin or path is refused (credentials never follow it);
/// more than `max_pages` pages, or a page over `max_page_bytes`, is an error.
async fn list<F>(
    repo: &Repository,
    first: Request,
    options: &ListOptions,
    what: &str,
    parse: F,
) -> Result<Vec<String>>
where
    F: Fn(&[u8]) -> serde_json::Result<Vec<String>>,
{
    let mut out = Vec::new();
    let mut req = first;
    let mut pages = 0u32;
    loop {
        pages = pages.saturating_add(1);
        if pages > options.max_pages {
            return Err(Error::Limit {
                what: what.to_string(),
                reason: format!("more than {} pages", options.max_pages),
            });
        }
        let (host, resp) = repo.send(origin, &req).await?;
        if !resp.status().is_success() {
            return Err(unexpected_response(&host, &format!("GET {what}"), resp).await);
        }
        let here = resp.url().clone();
        let next = next_link(&resp, &host)?;
        let stall = repo.shared.opts.stall_timeout;
        let body = read_page(resp, options.max_page_bytes, stall, &host, what).await?;
        let entries = parse(&body).map_err(|e| {
            Error::protocol_from(&host, format!("{what}: page {pages} is not a list"), e)
        })?;
        out.extend(entries);
        let Some(next) = next else {
            return Ok(out);
        };
        let next = here.join(&next).map_err(|e| {
            Error::protocol_from(&host, format!("{what}: bad Link `{}`", Elided(&next)), e)
        })?;
        if next.origin() != here.origin() || next.path() != here.path() {
            return Err(Error::protocol(
                &host,
                format!(
                    "{what}: refusing a Link to another origin or path: {}",
                    Elided(next.as_str())
                ),
            ));
        }
        if next == here {
            return Err(Error::protocol(
                &host,
                format!("{what}: Link to the same page"),
            ));
        }
        req.url = Some(next.to_string());
    }
}

/// The target of the `rel="next"` entry of the response's `Link` headers, if any.
fn next_link(resp: &Response, host: &str) -> Result<Option<String>> {
    for value in resp.headers().get_all(LINK) {
        let v = value
            .to_str()
            .map_err(|_| Error::protocol(host, "non-ASCII Link header"))?;
        if let Some(target) = parse_next(v) {
            return Ok(Some(target.to_string()));
        }
    }
    Ok(None)
}

/// The `<target>` of the `rel="next"` link in one `Link` header value (RFC 8288; entries are
/// separated by commas, which the targets registries send never contain).
fn parse_next(value: &str) -> Option<&str> {
    value.split(',').find_map(|entry| {
        let entry = entry.trim();
        let rest = entry.strip_prefix('<')?;
        let (target, params) = rest.split_once('>')?;
        let next = params.split(';').any(|p| {
            let p = p.trim();
            let Some((k, v)) = p.split_once('=') else {
                return false;
            };
            k.trim().eq_ignore_ascii_case("rel")
                && v.trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        next.then_some(target)
    })
}

/// A page's body, refused once it passes `max` bytes (a bounded read like a manifest's,
/// with the limit reported as a listing bound).
async fn read_page(
    resp: Response,
    max: u64,
    stall: std::time::Duration,
    host: &str,
    what: &str,
) -> Result<Vec<u8>> {
    match read_capped(resp, what, max, stall, host, Algorithm::Sha256).await {
        Ok((body, _)) => Ok(body),
        Err(Error::TooLarge { .. }) => Err(Error::Limit {
            what: what.to_string(),
            reason: format!("a page of more than {max} bytes"),
        }),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_is_found_among_others() {
        assert_eq!(
            parse_next(r#"</v2/a/tags/list?last=t2&n=2>; rel="next""#),
            Some("/v2/a/tags/list?last=t2&n=2")
        );
        assert_eq!(
            parse_next(r#"<https://x/prev>; rel="prev", <https://x/v2/_catalog?last=b>; rel=next"#),
            Some("https://x/v2/_catalog?last=b")
        );
        assert_eq!(parse_next(r#"</v2/x>; rel="prev""#), None);
        assert_eq!(parse_next("garbage"), None);
        assert_eq!(parse_next(r#"</v2/x; rel="next""#), None);
    }

    #[test]
    fn a_page_size_becomes_n() {
        let o = ListOptions::default().with_page_size(3);
        assert_eq!(with_page_size("tags/list", &o), "tags/list?n=3");
        assert_eq!(
            with_page_size("_catalog", &ListOptions::default()),
            "_catalog"
        );
    }
}
