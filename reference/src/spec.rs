//! [`Spec`]: containerd's two-part view of a reference, `locator` and `object`.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;
use crate::grammar;
use crate::reference::Reference;

/// A host-qualified reference split the way containerd's resolver wants it: where the
/// repository is (`locator`) and what to fetch from it (`object`).
///
/// | input | `locator` | `object` |
/// |---|---|---|
/// | `docker.io/library/redis:latest` | `docker.io/library/redis` | `latest` |
/// | `localhost:5000/a/b@sha256:…` | `localhost:5000/a/b` | `@sha256:…` |
/// | `example.com/x:v1@sha256:…` | `example.com/x` | `v1@sha256:…` |
/// | `example.com/x` | `example.com/x` | (empty) |
///
/// The fields are public, as in containerd; the accessors read them as strings and do not
/// re-validate. [`Spec::parse`] validates with the full reference grammar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Spec {
    /// The repository: `host[:port]/path`.
    pub locator: String,
    /// The tag, `@digest`, `tag@digest`, or empty.
    pub object: String,
}

impl Spec {
    /// Parses a host-qualified reference.
    ///
    /// The input must pass [`Reference::parse`], and its first component must look like a
    /// host: contain `.` or `:`, be a bracketed IPv6 address, or be `localhost`. `redis` and `user/app` are
    /// [`Error::MissingHostname`]; pass them through [`normalize`](crate::normalize) first.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let reference = Reference::parse(s)?;
        match reference.domain() {
            Some(domain) if grammar::looks_like_host(domain) => Ok(Self::from(&reference)),
            _ => Err(Error::MissingHostname {
                input: s.to_owned(),
            }),
        }
    }

    /// The host and port: the locator up to its first `/`.
    pub fn hostname(&self) -> &str {
        self.locator
            .split_once('/')
            .map_or(self.locator.as_str(), |(host, _)| host)
    }

    /// The repository path: the locator after its first `/` (empty if there is none).
    pub fn repository(&self) -> &str {
        self.locator.split_once('/').map_or("", |(_, path)| path)
    }

    /// The tag part of the object, if any.
    pub fn tag(&self) -> Option<&str> {
        let tag = self
            .object
            .split_once('@')
            .map_or(self.object.as_str(), |(tag, _)| tag);
        (!tag.is_empty()).then_some(tag)
    }

    /// The digest part of the object (after `@`), if any.
    pub fn digest(&self) -> Option<&str> {
        self.object.split_once('@').map(|(_, digest)| digest)
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.locator)?;
        if self.object.is_empty() || self.object.starts_with('@') {
            f.write_str(&self.object)
        } else {
            write!(f, ":{}", self.object)
        }
    }
}

impl FromStr for Spec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Splits any reference; a reference without a domain gives a locator without a host
/// (normalise first when a host is needed).
impl From<&Reference> for Spec {
    fn from(reference: &Reference) -> Self {
        let name = reference.name_str();
        let rest = &reference.as_str()[name.len()..];
        Self {
            locator: name.to_owned(),
            object: rest.strip_prefix(':').unwrap_or(rest).to_owned(),
        }
    }
}

impl From<Reference> for Spec {
    fn from(reference: Reference) -> Self {
        Self::from(&reference)
    }
}

/// Validates the spec's text with [`Reference::parse`] (which does not require a host).
impl TryFrom<&Spec> for Reference {
    type Error = Error;

    fn try_from(spec: &Spec) -> Result<Self, Self::Error> {
        Reference::parse(&spec.to_string())
    }
}

impl TryFrom<Spec> for Reference {
    type Error = Error;

    fn try_from(spec: Spec) -> Result<Self, Self::Error> {
        Reference::try_from(&spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    #[test]
    fn tagged_reference_splits_at_the_tag() {
        let spec = Spec::parse("docker.io/library/redis:latest").unwrap();
        assert_eq!(spec.locator, "docker.io/library/redis");
        assert_eq!(spec.object, "latest");
        assert_eq!(spec.hostname(), "docker.io");
        assert_eq!(spec.repository(), "library/redis");
        assert_eq!(spec.tag(), Some("latest"));
        assert_eq!(spec.digest(), None);
    }

    #[test]
    fn digest_object_keeps_its_at_sign() {
        let s = format!("localhost:5000/a/b@{SHA}");
        let spec = Spec::parse(&s).unwrap();
        assert_eq!(spec.object, format!("@{SHA}"));
        assert_eq!(spec.tag(), None);
        assert_eq!(spec.digest(), Some(SHA));
        assert_eq!(spec.to_string(), s);
    }

    #[test]
    fn familiar_name_needs_a_host() {
        assert_eq!(
            Spec::parse("library/redis"),
            Err(Error::MissingHostname {
                input: "library/redis".into()
            })
        );
    }
}
