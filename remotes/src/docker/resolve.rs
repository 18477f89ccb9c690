//! Resolving a tag or digest to the descriptor of a manifest or index.

use std::str::FromStr;

use oci_spec::image::{Descriptor, Digest, MediaType};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, Response, StatusCode};

use dist_content::{Algorithm, Digester, Elided};

use super::client::{Repository, Request, error_chain};
use crate::{Error, Result};

/// The header registries put the manifest digest in.
pub(crate) const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// The `Accept` header for manifest requests: every manifest and index type dist-images
/// reads, then anything.
pub(crate) fn manifest_accept() -> String {
    let mut accept = dist_images::media_types::MANIFEST_TYPES.join(", ");
    accept.push_str(", */*");
    accept
}

/// HEADs the manifest (GET when HEAD gives no digest), checks it against a digest
/// reference, and builds its descriptor.
pub(crate) async fn resolve(
    repo: &Repository,
    reference: &str,
    tag: Option<&str>,
    digest: Option<&str>,
) -> Result<Descriptor> {
    let expected = match digest {
        Some(d) => Some(Digest::from_str(d).map_err(|e| {
            Error::invalid_reference(
                reference,
                dist_content::elide(&e.to_string()),
                Some(e.into()),
            )
        })?),
        None => None,
    };
    let object = match (&expected, tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => {
            return Err(Error::invalid_reference(
                reference,
                "no tag or digest to resolve",
                None,
            ));
        }
    };
    // Tags need an endpoint trusted to resolve; a digest may come from any pull mirror.
    let cap = if expected.is_some() {
        |c: &crate::Capabilities| c.pull
    } else {
        |c: &crate::Capabilities| c.resolve
    };
    let max = repo.shared.opts.max_manifest_size;
    let mut req = Request::new(Method::HEAD, format!("manifests/{object}"));
    req.accept = Some(manifest_accept());

    let (host, head) = repo.send(cap, &req).await?;
    check_status(&head, &host, reference)?;
    let headers = head.headers();
    let head_digest = header_digest(headers, &host)?;
    let length = content_length(headers);
    if let Some(len) = length.filter(|l| *l > max) {
        return Err(too_large(reference, len, max));
    }
    // A registry names content by its own (canonical) algorithm: a HEAD digest of another
    // algorithm than the reference's says nothing, and the body is hashed instead.
    if let (Some(d), Some(len), Some(mt)) = (&head_digest, length, media_type(headers))
        && expected
            .as_ref()
            .is_none_or(|e| e.algorithm() == d.algorithm())
    {
        check_expected(expected.as_ref(), d, reference)?;
        return Ok(Descriptor::new(mt, len, d.clone()));
    }

    req.method = Method::GET;
    let (host, resp) = repo.send(cap, &req).await?;
    check_status(&resp, &host, reference)?;
    let body_header_digest = header_digest(resp.headers(), &host)?;
    let header_type = media_type(resp.headers());
    let stall = repo.shared.opts.stall_timeout;
    // Hash with the reference's algorithm, else the registry's, else sha256.
    let alg = match (&expected, &body_header_digest) {
        (Some(e), _) => Algorithm::of(e)?,
        (None, Some(h)) => Algorithm::of(h).unwrap_or_default(),
        (None, None) => Algorithm::Sha256,
    };
    let (body, actual) = read_capped(resp, reference, max, stall, &host, alg).await?;
    if let Some(d) = &body_header_digest
        && d.algorithm() == actual.algorithm()
        && *d != actual
    {
        return Err(Error::mismatch(
            reference,
            format!("Docker-Content-Digest {d} disagrees with the body's digest {actual}"),
        ));
    }
    check_expected(expected.as_ref(), &actual, reference)?;
    let mt = header_type
        .or_else(|| body_media_type(&body))
        .ok_or_else(|| Error::protocol(&host, format!("{reference}: no media type")))?;
    Ok(Descriptor::new(mt, body.len() as u64, actual))
}

fn check_status(resp: &Response, host: &str, reference: &str) -> Result<()> {
    match resp.status() {
        s if s.is_success() => Ok(()),
        StatusCode::NOT_FOUND => Err(Error::NotFound {
            what: reference.to_string(),
        }),
        StatusCode::FORBIDDEN => Err(Error::Unauthorized {
            host: host.to_string(),
            reason: format!("{reference}: forbidden"),
        }),
        s => Err(Error::protocol(
            host,
            format!("{reference}: unexpected {s}"),
        )),
    }
}

fn check_expected(expected: Option<&Digest>, actual: &Digest, reference: &str) -> Result<()> {
    match expected {
        Some(e) if e != actual => Err(Error::mismatch(
            reference,
            format!("registry serves {actual}"),
        )),
        _ => Ok(()),
    }
}

fn too_large(reference: &str, size: u64, limit: u64) -> Error {
    Error::TooLarge {
        what: reference.to_string(),
        size,
        limit,
    }
}

pub(crate) fn header_digest(headers: &HeaderMap, host: &str) -> Result<Option<Digest>> {
    let Some(v) = headers.get(DOCKER_CONTENT_DIGEST) else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| Error::protocol(host, "non-ASCII Docker-Content-Digest"))?;
    Digest::from_str(s.trim()).map(Some).map_err(|e| {
        // The parser's message may quote the value again: elide the whole reason.
        let reason = format!("bad Docker-Content-Digest `{}`: {e}", Elided(s));
        Error::protocol(host, dist_content::elide(&reason))
    })
}

/// `Content-Length` from the header itself (a HEAD response has no body to size).
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn media_type(headers: &HeaderMap) -> Option<MediaType> {
    let v = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let mt = v.split(';').next()?.trim();
    // Generic JSON types say nothing about which manifest this is.
    if mt.is_empty() || mt == "application/json" || mt == "text/plain" {
        return None;
    }
    Some(MediaType::from(mt))
}

fn body_media_type(body: &[u8]) -> Option<MediaType> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    let p: Probe = serde_json::from_slice(body).ok()?;
    p.media_type.map(|m| MediaType::from(m.as_str()))
}

/// Reads a small response body (a manifest, a referrers index, a listing page), refusing it
/// once it passes `max` bytes, and digests it with `alg`. A body that delivers nothing for
/// `stall` fails `Unavailable`.
pub(crate) async fn read_capped(
    mut resp: Response,
    reference: &str,
    max: u64,
    stall: std::time::Duration,
    host: &str,
    alg: Algorithm,
) -> Result<(Vec<u8>, Digest)> {
    if let Some(len) = content_length(resp.headers()).filter(|l| *l > max) {
        return Err(too_large(reference, len, max));
    }
    let mut body = Vec::new();
    let mut hasher = Digester::new(alg);
    loop {
        let chunk = match tokio::time::timeout(stall, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => break,
            Ok(Err(e)) if !e.is_timeout() => {
                let reason = format!("{reference}: reading the body: {}", error_chain(&e));
                let reason = Elided(&reason).to_string();
                return Err(Error::unavailable_from(host, reason, e.without_url()));
            }
            Ok(Err(_)) | Err(_) => {
                let reason = format!("{reference}: reading the body: no data for {stall:?}");
                return Err(Error::unavailable(host, Elided(&reason).to_string()));
            }
        };
        let total = (body.len() as u64).saturating_add(chunk.len() as u64);
        if total > max {
            return Err(too_large(reference, total, max));
        }
        hasher.update(&chunk);
        body.extend_from_slice(&chunk);
    }
    Ok((body, hasher.finish()))
}
