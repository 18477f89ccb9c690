//! [`Reference`]: a parsed `[domain/]path[:tag][@digest]`.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;
use crate::grammar::{self, NAME_MAX_LEN};

/// A syntactically valid image reference, split into domain, path, tag and digest.
///
/// Parsing follows the distribution reference grammar exactly and changes nothing: `redis`
/// stays `redis` (no domain, no tag). Use [`normalize`](crate::normalize) for Docker's
/// defaults. As in the Go implementation, the first `/`-separated component is the domain
/// whenever it matches the domain grammar (so `a/b` has domain `a`);
/// [`Spec::parse`](crate::Spec::parse) is the stricter, host-qualified form.
///
/// The reference keeps its text in one string, so [`Display`](fmt::Display) gives back
/// exactly what was parsed and the accessors borrow from it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The whole reference, as parsed.
    repr: String,
    /// Length of the domain, when the name has one (the path starts after it and a `/`).
    domain_len: Option<usize>,
    /// End of the name in `repr`.
    name_end: usize,
    /// End of the tag in `repr` (equal to `name_end` when there is no tag).
    tag_end: usize,
}

impl Reference {
    /// Parses `s` against the reference grammar: `[domain/]path[:tag][@digest]`.
    ///
    /// Rejects, each with its own [`Error`] variant: the empty string, upper-case letters in
    /// the path, names over 255 characters, tags over 128 characters or with bad characters,
    /// digests with a malformed or unsupported algorithm or the wrong hex length, empty
    /// components (`a//b`, `a/`), trailing `:` or `@`, and malformed registry hosts.
    pub fn parse(s: &str) -> Result<Self, Error> {
        Self::parse_with(s, str::to_owned)
    }

    /// Parses text the caller already owns, without copying it.
    pub(crate) fn parse_string(s: String) -> Result<Self, Error> {
        // Validation borrows `s`; on success the string moves into the reference.
        let layout = Self::parse_with(&s, |_| String::new())?;
        Ok(Self { repr: s, ..layout })
    }

    /// Validates `s` and builds the reference, taking its text from `text(s)`.
    fn parse_with(s: &str, text: impl FnOnce(&str) -> String) -> Result<Self, Error> {
        if s.is_empty() {
            return Err(Error::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (s, None),
        };
        // A ':' is a tag separator unless a '/' follows it (then it is a port).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if name.is_empty() {
            return Err(invalid_format(s, "missing repository name"));
        }
        let domain_len = split_name(s, name)?;
        if name.len() > NAME_MAX_LEN {
            return Err(Error::NameTooLong {
                input: s.to_owned(),
                len: name.len(),
            });
        }
        if let Some(tag) = tag {
            if tag.is_empty() {
                return Err(invalid_format(s, "trailing ':' without a tag"));
            }
            if !grammar::is_tag(tag) {
                return Err(Error::InvalidTag {
                    input: s.to_owned(),
                    tag: tag.to_owned(),
                });
            }
        }
        if let Some(digest) = digest {
            if digest.is_empty() {
                return Err(invalid_format(s, "trailing '@' without a digest"));
            }
            grammar::check_digest(digest).map_err(|problem| Error::InvalidDigest {
                input: s.to_owned(),
                digest: digest.to_owned(),
                problem,
            })?;
        }
        Ok(Self {
            repr: text(s),
            domain_len,
            name_end: name.len(),
            tag_end: tag.map_or(name.len(), |t| name.len() + 1 + t.len()),
        })
    }

    /// The registry host and optional port (`docker.io`, `localhost:5000`, `[::1]:5000`),
    /// when the name has one.
    pub fn domain(&self) -> Option<&str> {
        self.domain_len.map(|len| &self.repr[..len])
    }

    /// The repository path without the domain (`library/redis`).
    pub fn path(&self) -> &str {
        let start = self.domain_len.map_or(0, |len| len + 1);
        &self.repr[start..self.name_end]
    }

    /// The full repository name: `domain/path`, or the path alone when there is no domain.
    pub fn name(&self) -> String {
        self.name_str().to_owned()
    }

    /// The full repository name, borrowed.
    pub(crate) fn name_str(&self) -> &str {
        &self.repr[..self.name_end]
    }

    /// The tag (`latest`), if one was given.
    pub fn tag(&self) -> Option<&str> {
        (self.tag_end > self.name_end).then(|| &self.repr[self.name_end + 1..self.tag_end])
    }

    /// The digest as `algorithm:hex` (`sha256:...`), if one was given.
    pub fn digest(&self) -> Option<&str> {
        (self.repr.len() > self.tag_end).then(|| &self.repr[self.tag_end + 1..])
    }

    /// This reference with its tag set to `tag` (replacing any tag, keeping the digest).
    pub fn with_tag(&self, tag: &str) -> Result<Self, Error> {
        let mut s = String::with_capacity(self.repr.len() + tag.len() + 1);
        s.push_str(self.name_str());
        s.push(':');
        s.push_str(tag);
        if let Some(digest) = self.digest() {
            s.push('@');
            s.push_str(digest);
        }
        Self::parse(&s)
    }

    /// This reference with its digest set to `digest` (replacing any digest, keeping the
    /// tag).
    pub fn with_digest(&self, digest: &str) -> Result<Self, Error> {
        let mut s = String::with_capacity(self.tag_end + digest.len() + 1);
        s.push_str(&self.repr[..self.tag_end]);
        s.push('@');
        s.push_str(digest);
        Self::parse(&s)
    }

    /// The name alone, without tag or digest (Go's `TrimNamed`).
    pub fn trim(&self) -> Self {
        Self {
            repr: self.name_str().to_owned(),
            domain_len: self.domain_len,
            name_end: self.name_end,
            tag_end: self.name_end,
        }
    }

    /// Appends `:tag` to a reference that has neither tag nor digest; `tag` must be a
    /// valid tag (callers pass constants).
    pub(crate) fn push_tag(mut self, tag: &str) -> Self {
        debug_assert!(self.tag().is_none() && self.digest().is_none() && grammar::is_tag(tag));
        self.repr.push(':');
        self.repr.push_str(tag);
        self.tag_end = self.repr.len();
        self
    }

    /// The whole reference as text (the same as [`Display`](fmt::Display)).
    pub fn as_str(&self) -> &str {
        &self.repr
    }
}

/// Splits and validates a name; returns the domain length when the first component is one.
fn split_name(input: &str, name: &str) -> Result<Option<usize>, Error> {
    match name.split_once('/') {
        Some((first, path)) if grammar::is_domain(first) => {
            check_path(input, path)?;
            Ok(Some(first.len()))
        }
        // Only a host may contain these, so the host is what is wrong.
        Some((first, _)) if first.contains([':', '[', ']']) => Err(Error::InvalidDomain {
            input: input.to_owned(),
            domain: first.to_owned(),
        }),
        _ => {
            check_path(input, name)?;
            Ok(None)
        }
    }
}

fn check_path(input: &str, path: &str) -> Result<(), Error> {
    if grammar::is_path(path) {
        return Ok(());
    }
    if path.split('/').any(str::is_empty) {
        return Err(invalid_format(
            input,
            "empty path component (leading, trailing or double '/')",
        ));
    }
    if grammar::is_path(&path.to_ascii_lowercase()) {
        return Err(Error::NameContainsUppercase {
            input: input.to_owned(),
        });
    }
    Err(invalid_format(
        input,
        "path components must be lower-case alphanumerics joined by '.', '_', '__' or '-'",
    ))
}

fn invalid_format(input: &str, reason: &'static str) -> Error {
    Error::InvalidFormat {
        input: input.to_owned(),
        reason,
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reference")
            .field("domain", &self.domain())
            .field("path", &self.path())
            .field("tag", &self.tag())
            .field("digest", &self.digest())
            .finish()
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for Reference {
    fn as_ref(&self) -> &str {
        &self.repr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    #[test]
    fn splits_domain_path_tag_and_digest() {
        let s = format!("localhost:5000/a/b:v1@{SHA}");
        let r = Reference::parse(&s).unwrap();
        assert_eq!(r.domain(), Some("localhost:5000"));
        assert_eq!(r.path(), "a/b");
        assert_eq!(r.name(), "localhost:5000/a/b");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest(), Some(SHA));
        assert_eq!(r.to_string(), s);
    }

    #[test]
    fn bare_name_has_no_domain_tag_or_digest() {
        let r: Reference = "redis".parse().unwrap();
        assert_eq!(r.domain(), None);
        assert_eq!(r.path(), "redis");
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), None);
    }

    #[test]
    fn trailing_separators_are_format_errors() {
        for s in ["redis:", "redis@", "redis/", "docker.io/", "a//b"] {
            assert!(
                matches!(Reference::parse(s), Err(Error::InvalidFormat { .. })),
                "{s}"
            );
        }
    }

    #[test]
    fn debug_shows_the_parts() {
        let r = Reference::parse("example.com/x:1").unwrap();
        let dbg = format!("{r:?}");
        assert!(dbg.contains("domain: Some(\"example.com\")"), "{dbg}");
        assert!(dbg.contains("tag: Some(\"1\")"), "{dbg}");
    }
}
