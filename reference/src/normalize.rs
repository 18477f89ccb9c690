//! Docker's normalisation: familiar names (`redis`) to full references and back.

use crate::error::Error;
use crate::grammar;
use crate::reference::Reference;

/// Docker Hub's canonical domain.
pub const DEFAULT_DOMAIN: &str = "docker.io";

/// Docker Hub's legacy domain, rewritten to [`DEFAULT_DOMAIN`].
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";

/// The namespace of official images on Docker Hub (`redis` is `library/redis`).
pub const OFFICIAL_REPO_PREFIX: &str = "library/";

/// The tag used when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

/// Turns a familiar reference into a full one, as the Docker CLI does.
///
/// - no host: `redis` → `docker.io/library/redis:latest`, `user/app` →
///   `docker.io/user/app:latest`. The first component is a host when it contains `.` or
///   `:`, is a bracketed IPv6 address, is `localhost`, or has upper-case letters (which no
///   namespace may have).
/// - `index.docker.io` becomes `docker.io`; single-component paths on Docker Hub get
///   `library/`; other registries are left alone (`localhost:5000/x` → `localhost:5000/x:latest`).
/// - the tag `latest` is added only when neither a tag nor a digest is given; a reference
///   with both keeps both.
/// - a 64-character lower-case hex string is refused ([`Error::LooksLikeImageId`]), as are
///   upper-case letters in the path and everything [`Reference::parse`] refuses.
///
/// The result always has a domain: a first component that looks like a host but is not a
/// valid one (`foo_bar.com/x`) is [`Error::InvalidDomain`], where Go's parser would quietly
/// treat it as a path.
pub fn normalize(s: &str) -> Result<Reference, Error> {
    if s.is_empty() {
        return Err(Error::Empty);
    }
    if grammar::is_identifier(s) {
        return Err(Error::LooksLikeImageId {
            input: s.to_owned(),
        });
    }
    let (domain, remainder) = split_docker_domain(s);
    // Room for the default tag, so that adding it does not reallocate.
    let mut full = String::with_capacity(
        domain.len() + 1 + OFFICIAL_REPO_PREFIX.len() + remainder.len() + 1 + DEFAULT_TAG.len(),
    );
    full.push_str(domain);
    full.push('/');
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        full.push_str(OFFICIAL_REPO_PREFIX);
    }
    full.push_str(remainder);

    let parsed = Reference::parse_string(full).map_err(|e| with_input(e, s))?;
    if parsed.domain() != Some(domain) {
        return Err(Error::InvalidDomain {
            input: s.to_owned(),
            domain: domain.to_owned(),
        });
    }
    if parsed.tag().is_none() && parsed.digest().is_none() {
        return Ok(parsed.push_tag(DEFAULT_TAG));
    }
    Ok(parsed)
}

/// Splits off the host by Docker's rule; the default domain when there is none.
fn split_docker_domain(s: &str) -> (&str, &str) {
    match s.split_once('/') {
        None => (DEFAULT_DOMAIN, s),
        Some((LEGACY_DEFAULT_DOMAIN, rest)) => (DEFAULT_DOMAIN, rest),
        Some((first, rest))
            if grammar::looks_like_host(first) || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        Some(_) => (DEFAULT_DOMAIN, s),
    }
}

/// Reports errors against what the caller wrote, not the expanded string.
fn with_input(err: Error, s: &str) -> Error {
    let input = s.to_owned();
    match err {
        Error::NameContainsUppercase { .. } => Error::NameContainsUppercase { input },
        Error::NameTooLong { len, .. } => Error::NameTooLong { input, len },
        Error::InvalidTag { tag, .. } => Error::InvalidTag { input, tag },
        Error::InvalidDigest {
            digest, problem, ..
        } => Error::InvalidDigest {
            input,
            digest,
            problem,
        },
        Error::InvalidDomain { domain, .. } => Error::InvalidDomain { input, domain },
        Error::InvalidFormat { reason, .. } => Error::InvalidFormat { input, reason },
        other => other,
    }
}

/// The short name the Docker CLI shows: `docker.io/library/redis` → `redis`,
/// `docker.io/user/app` → `user/app`; names on other registries are unchanged.
///
/// The short form is only used when [`normalize`] maps it back to the same name, so
/// `docker.io/library/a/b` stays `library/a/b` and `docker.io/a.b/c` (whose short form
/// would read `a.b` as a host) stays whole. This differs from Go's `FamiliarName`, which
/// shortens the latter anyway.
pub fn familiar_name(reference: &Reference) -> String {
    if reference.domain() != Some(DEFAULT_DOMAIN) {
        return reference.name();
    }
    let path = reference.path();
    match path.strip_prefix(OFFICIAL_REPO_PREFIX) {
        Some(rest) if !rest.contains('/') && !grammar::is_identifier(rest) => rest.to_owned(),
        _ => match path.split_once('/') {
            Some((first, _)) if !grammar::looks_like_host(first) => path.to_owned(),
            _ => reference.name(),
        },
    }
}

/// [`familiar_name`] with the tag and digest: `docker.io/library/redis:latest` →
/// `redis:latest`.
pub fn familiar_string(reference: &Reference) -> String {
    let mut out = familiar_name(reference);
    if let Some(tag) = reference.tag() {
        out.push(':');
        out.push_str(tag);
    }
    if let Some(digest) = reference.digest() {
        out.push('@');
        out.push_str(digest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_image_gets_domain_library_and_latest() {
        let r = normalize("redis").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/redis:latest");
        assert_eq!(familiar_string(&r), "redis:latest");
        assert_eq!(familiar_name(&r), "redis");
    }

    #[test]
    fn legacy_index_domain_becomes_docker_io() {
        let r = normalize("index.docker.io/debian").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/debian:latest");
    }

    #[test]
    fn errors_name_the_callers_input() {
        let err = normalize("docker/Docker").unwrap_err();
        assert_eq!(
            err,
            Error::NameContainsUppercase {
                input: "docker/Docker".into()
            }
        );
    }

    #[test]
    fn host_like_but_invalid_domain_is_refused() {
        assert!(matches!(
            normalize("foo_bar.com/x"),
            Err(Error::InvalidDomain { .. })
        ));
    }
}
