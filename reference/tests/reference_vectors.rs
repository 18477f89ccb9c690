//! The test tables of distribution/reference's `reference_test.go`, as data.
//!
//! Go's `ErrReferenceInvalidFormat` is split here into finer variants: a malformed registry
//! host is `invalid_domain`, a digest that fails the grammar is `invalid_digest`. Each such
//! case says so in a comment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dist_reference::{DigestProblem, Error, Reference};

const SHA256_F: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

/// What parsing one input must give.
enum Want {
    /// Success with these parts (domain, name, tag, digest).
    Ok(Option<String>, String, Option<String>, Option<String>),
    /// Failure with the error whose `kind_name()` is this.
    Err(&'static str),
}

fn ok(domain: &str, name: &str, tag: &str, digest: &str) -> Want {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Want::Ok(opt(domain), name.to_owned(), opt(tag), opt(digest))
}

fn check(input: &str, want: &Want) {
    let got = Reference::parse(input);
    match (want, got) {
        (Want::Ok(domain, name, tag, digest), Ok(r)) => {
            assert_eq!(r.to_string(), input, "round trip of {input:?}");
            assert_eq!(r.domain(), domain.as_deref(), "domain of {input:?}");
            assert_eq!(r.name(), *name, "name of {input:?}");
            assert_eq!(r.tag(), tag.as_deref(), "tag of {input:?}");
            assert_eq!(r.digest(), digest.as_deref(), "digest of {input:?}");
            let expected_path = match domain {
                Some(d) => &name[d.len() + 1..],
                None => name.as_str(),
            };
            assert_eq!(r.path(), expected_path, "path of {input:?}");
        }
        (Want::Ok(..), Err(e)) => panic!("{input:?} should parse, got {e}"),
        (Want::Err(kind), Ok(r)) => panic!("{input:?} should fail with {kind}, got {r:?}"),
        (Want::Err(kind), Err(e)) => {
            assert_eq!(e.kind_name(), *kind, "error for {input:?}: {e}");
            if !matches!(e, Error::Empty) {
                assert!(e.to_string().contains(&format!("{input:?}")), "{e}");
            }
        }
    }
}

/// `TestReferenceParse`.
fn reference_parse_cases() -> Vec<(String, Want)> {
    let sha512_f = format!("sha512:{}", "f".repeat(128));
    let v = vec![
        ("test_com".into(), ok("", "test_com", "", "")),
        ("test.com:tag".into(), ok("", "test.com", "tag", "")),
        ("test.com:5000".into(), ok("", "test.com", "5000", "")),
        (
            "test.com/repo:tag".into(),
            ok("test.com", "test.com/repo", "tag", ""),
        ),
        (
            "test:5000/repo".into(),
            ok("test:5000", "test:5000/repo", "", ""),
        ),
        (
            "test:5000/repo:tag".into(),
            ok("test:5000", "test:5000/repo", "tag", ""),
        ),
        (
            format!("test:5000/repo@{SHA256_F}"),
            ok("test:5000", "test:5000/repo", "", SHA256_F),
        ),
        (
            format!("test:5000/repo:tag@{SHA256_F}"),
            ok("test:5000", "test:5000/repo", "tag", SHA256_F),
        ),
        (String::new(), Want::Err("empty")),
        (":justtag".into(), Want::Err("invalid_format")),
        (format!("@{SHA256_F}"), Want::Err("invalid_format")),
        (
            "repo@sha256:ffffffffffffffffffffffffffffffffff".into(),
            Want::Err("invalid_digest"),
        ),
        (
            format!("validname@invaliddigest:{}", "f".repeat(64)),
            Want::Err("invalid_digest"),
        ),
        ("Uppercase:tag".into(), Want::Err("name_contains_uppercase")),
        // Go's FIXME: "Uppercase" is a valid domain, so this parses (kept for parity).
        (
            "Uppercase/lowercase:tag".into(),
            ok("Uppercase", "Uppercase/lowercase", "tag", ""),
        ),
        (
            "test:5000/Uppercase/lowercase:tag".into(),
            Want::Err("name_contains_uppercase"),
        ),
        (
            "lowercase:Uppercase".into(),
            ok("", "lowercase", "Uppercase", ""),
        ),
        (
            format!("{}a:tag", "a/".repeat(128)),
            Want::Err("name_too_long"),
        ),
        (
            format!("{}a:tag-puts-this-over-max", "a/".repeat(127)),
            ok(
                "a",
                &format!("{}a", "a/".repeat(127)),
                "tag-puts-this-over-max",
                "",
            ),
        ),
        ("aa/asdf$$^/aa".into(), Want::Err("invalid_format")),
        (
            "sub-dom1.foo.com/bar/baz/quux".into(),
            ok("sub-dom1.foo.com", "sub-dom1.foo.com/bar/baz/quux", "", ""),
        ),
        (
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag".into(),
            ok(
                "sub-dom1.foo.com",
                "sub-dom1.foo.com/bar/baz/quux",
                "some-long-tag",
                "",
            ),
        ),
        (
            "b.gcr.io/test.example.com/my-app:test.example.com".into(),
            ok(
                "b.gcr.io",
                "b.gcr.io/test.example.com/my-app",
                "test.example.com",
                "",
            ),
        ),
        (
            "xn--n3h.com/myimage:xn--n3h.com".into(),
            ok("xn--n3h.com", "xn--n3h.com/myimage", "xn--n3h.com", ""),
        ),
        (
            format!("xn--7o8h.com/myimage:xn--7o8h.com@{sha512_f}"),
            ok(
                "xn--7o8h.com",
                "xn--7o8h.com/myimage",
                "xn--7o8h.com",
                &sha512_f,
            ),
        ),
        ("foo_bar.com:8080".into(), ok("", "foo_bar.com", "8080", "")),
        (
            "foo/foo_bar.com:8080".into(),
            ok("foo", "foo/foo_bar.com", "8080", ""),
        ),
        ("192.168.1.1".into(), ok("", "192.168.1.1", "", "")),
        ("192.168.1.1:tag".into(), ok("", "192.168.1.1", "tag", "")),
        ("192.168.1.1:5000".into(), ok("", "192.168.1.1", "5000", "")),
        (
            "192.168.1.1/repo".into(),
            ok("192.168.1.1", "192.168.1.1/repo", "", ""),
        ),
        (
            "192.168.1.1:5000/repo".into(),
            ok("192.168.1.1:5000", "192.168.1.1:5000/repo", "", ""),
        ),
        (
            "192.168.1.1:5000/repo:5050".into(),
            ok("192.168.1.1:5000", "192.168.1.1:5000/repo", "5050", ""),
        ),
        ("[2001:db8::1]".into(), Want::Err("invalid_format")),
        ("[2001:db8::1]:5000".into(), Want::Err("invalid_format")),
        ("[2001:db8::1]:tag".into(), Want::Err("invalid_format")),
        (
            "[2001:db8::1]/repo".into(),
            ok("[2001:db8::1]", "[2001:db8::1]/repo", "", ""),
        ),
        (
            "[2001:db8:1:2:3:4:5:6]/repo:tag".into(),
            ok(
                "[2001:db8:1:2:3:4:5:6]",
                "[2001:db8:1:2:3:4:5:6]/repo",
                "tag",
                "",
            ),
        ),
        (
            "[2001:db8::1]:5000/repo".into(),
            ok("[2001:db8::1]:5000", "[2001:db8::1]:5000/repo", "", ""),
        ),
        (
            "[2001:db8::1]:5000/repo:tag".into(),
            ok("[2001:db8::1]:5000", "[2001:db8::1]:5000/repo", "tag", ""),
        ),
        (
            format!("[2001:db8::1]:5000/repo@{SHA256_F}"),
            ok(
                "[2001:db8::1]:5000",
                "[2001:db8::1]:5000/repo",
                "",
                SHA256_F,
            ),
        ),
        (
            format!("[2001:db8::1]:5000/repo:tag@{SHA256_F}"),
            ok(
                "[2001:db8::1]:5000",
                "[2001:db8::1]:5000/repo",
                "tag",
                SHA256_F,
            ),
        ),
        (
            "[2001:db8::]:5000/repo".into(),
            ok("[2001:db8::]:5000", "[2001:db8::]:5000/repo", "", ""),
        ),
        (
            "[::1]:5000/repo".into(),
            ok("[::1]:5000", "[::1]:5000/repo", "", ""),
        ),
        // Go: ErrReferenceInvalidFormat; here the zone makes the host invalid.
        (
            "[fe80::1%eth0]:5000/repo".into(),
            Want::Err("invalid_domain"),
        ),
        (
            "[fe80::1%@invalidzone]:5000/repo".into(),
            Want::Err("invalid_format"),
        ),
    ];
    v
}

#[test]
fn reference_parse_table_matches_distribution() {
    let cases = reference_parse_cases();
    assert!(cases.len() >= 45);
    for (input, want) in &cases {
        check(input, want);
    }
}

#[test]
fn digest_errors_say_which_rule_failed() {
    let err = Reference::parse("repo@sha256:ffffffffffffffffffffffffffffffffff").unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidDigest {
            problem: DigestProblem::WrongLength {
                expected: 64,
                actual: 34
            },
            ..
        }
    ));
    let err = Reference::parse(&format!("validname@invaliddigest:{}", "f".repeat(64))).unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidDigest {
            problem: DigestProblem::UnsupportedAlgorithm,
            ..
        }
    ));
}

/// `TestWithNameFailure`: names that `WithName` refuses are refused by `parse` too.
#[test]
fn with_name_failures_are_refused() {
    let cases: [(String, &str); 6] = [
        (String::new(), "empty"),
        (":justtag".into(), "invalid_format"),
        (format!("@{SHA256_F}"), "invalid_format"),
        (
            format!("validname@invaliddigest:{}", "f".repeat(64)),
            "invalid_digest",
        ),
        (format!("{}a:tag", "a/".repeat(128)), "name_too_long"),
        ("aa/asdf$$^/aa".into(), "invalid_format"),
    ];
    for (input, kind) in &cases {
        check(input, &Want::Err(kind));
    }
}

/// `TestDomainAndPath`.
#[test]
fn domain_and_path_split_like_distribution() {
    let cases = [
        ("test.com/foo", "test.com", "foo"),
        ("test_com/foo", "", "test_com/foo"),
        ("test:8080/foo", "test:8080", "foo"),
        ("test.com:8080/foo", "test.com:8080", "foo"),
        ("test-com:8080/foo", "test-com:8080", "foo"),
        ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
    ];
    for (input, domain, path) in cases {
        let r = Reference::parse(input).unwrap();
        assert_eq!(r.domain().unwrap_or(""), domain, "{input}");
        assert_eq!(r.path(), path, "{input}");
    }
}

/// `TestSerialization`: the text form survives a parse.
#[test]
fn serialization_round_trips() {
    check("", &Want::Err("empty"));
    check(
        "example.com:8000/named",
        &ok("example.com:8000", "example.com:8000/named", "", ""),
    );
    check(
        "example.com:8000/named:tagged",
        &ok("example.com:8000", "example.com:8000/named", "tagged", ""),
    );
    let d = "sha256:1234567890098765432112345667890098765432112345667890098765432112";
    check(
        &format!("other.com/named@{d}"),
        &ok("other.com", "other.com/named", "", d),
    );
}

/// `TestWithTag` (its digest case uses a full-length digest: ours validates the length).
#[test]
fn with_tag_combines_name_and_tag() {
    let d = "sha256:1234567890098765432112345667890098765432112345667890098765432112";
    let cases = [
        ("test.com/foo", "", "tag", "test.com/foo:tag".to_owned()),
        ("foo", "", "tag2", "foo:tag2".to_owned()),
        (
            "test.com:8000/foo",
            "",
            "tag4",
            "test.com:8000/foo:tag4".to_owned(),
        ),
        (
            "test.com:8000/foo",
            "",
            "TAG5",
            "test.com:8000/foo:TAG5".to_owned(),
        ),
        (
            "test.com:8000/foo",
            d,
            "TAG5",
            format!("test.com:8000/foo:TAG5@{d}"),
        ),
    ];
    for (name, digest, tag, combined) in cases {
        let mut r = Reference::parse(name).unwrap();
        if !digest.is_empty() {
            r = r.with_digest(digest).unwrap();
        }
        assert_eq!(r.with_tag(tag).unwrap().to_string(), combined);
    }
}

/// `TestWithDigest`.
#[test]
fn with_digest_combines_name_and_digest() {
    let d = "sha256:1234567890098765432112345667890098765432112345667890098765432112";
    let cases = [
        ("test.com/foo", "", format!("test.com/foo@{d}")),
        ("foo", "", format!("foo@{d}")),
        ("test.com:8000/foo", "", format!("test.com:8000/foo@{d}")),
        (
            "test.com:8000/foo",
            "latest",
            format!("test.com:8000/foo:latest@{d}"),
        ),
    ];
    for (name, tag, combined) in cases {
        let mut r = Reference::parse(name).unwrap();
        if !tag.is_empty() {
            r = r.with_tag(tag).unwrap();
        }
        assert_eq!(r.with_digest(d).unwrap().to_string(), combined);
    }
}

/// `TestInvalidReferenceComponents`: bad tags and digests are refused when combining.
#[test]
fn with_tag_and_with_digest_validate() {
    let r = Reference::parse("docker.io/library/busybox").unwrap();
    assert_eq!(r.with_tag("-foo").unwrap_err().kind_name(), "invalid_tag");
    assert_eq!(
        r.with_digest("foo").unwrap_err().kind_name(),
        "invalid_digest"
    );
}

#[test]
fn trim_drops_tag_and_digest() {
    let r = Reference::parse(&format!("example.com/a/b:t@{SHA256_F}")).unwrap();
    let t = r.trim();
    assert_eq!(t.to_string(), "example.com/a/b");
    assert_eq!(t.domain(), Some("example.com"));
    assert_eq!(t.path(), "a/b");
    assert_eq!(t, Reference::parse("example.com/a/b").unwrap());
}

/// The limits at their exact boundaries (Go's tables only test well past them).
#[test]
fn limits_hold_at_their_boundaries() {
    let path255 = format!("{}b", "a/".repeat(127));
    assert_eq!(path255.len(), 255);
    assert!(Reference::parse(&path255).is_ok());
    let err = Reference::parse(&format!("{path255}b:tag")).unwrap_err();
    assert!(matches!(err, Error::NameTooLong { len: 256, .. }), "{err}");

    let domain = "example.com";
    let path = "p".repeat(255 - domain.len() - 1);
    assert!(Reference::parse(&format!("{domain}/{path}")).is_ok());
    assert_eq!(
        Reference::parse(&format!("{domain}/{path}p"))
            .unwrap_err()
            .kind_name(),
        "name_too_long"
    );

    let tag128 = "t".repeat(128);
    assert_eq!(
        Reference::parse(&format!("x:{tag128}")).unwrap().tag(),
        Some(tag128.as_str())
    );
    assert_eq!(
        Reference::parse(&format!("x:{tag128}t"))
            .unwrap_err()
            .kind_name(),
        "invalid_tag"
    );
}

#[test]
fn malformed_hosts_are_domain_errors() {
    for input in [
        "[fe80::1%25]:5000/x",
        "[]/x",
        "[::1/x",
        "host:/x",
        "host:5000:1/x",
        "[::1]:/x",
        "[::1]x/y",
    ] {
        let err = Reference::parse(input).unwrap_err();
        assert_eq!(err.kind_name(), "invalid_domain", "{input}: {err}");
    }
}

#[test]
fn tag_characters_are_checked() {
    for tag in ["-a", ".a", "a~b", "a/b", "a b", "ä"] {
        let input = format!("x:{tag}");
        assert!(Reference::parse(&input).is_err(), "{input}");
    }
    for tag in ["_a", "A", "1.0-rc_1", "latest"] {
        let input = format!("x:{tag}");
        assert_eq!(Reference::parse(&input).unwrap().tag(), Some(tag));
    }
}

#[test]
fn digest_algorithms_and_lengths_are_checked() {
    let ok = [
        format!("sha256:{}", "0".repeat(64)),
        format!("sha384:{}", "0".repeat(96)),
        format!("sha512:{}", "0".repeat(128)),
    ];
    for d in &ok {
        assert_eq!(
            Reference::parse(&format!("x@{d}")).unwrap().digest(),
            Some(d.as_str())
        );
    }
    let bad = [
        (format!("sha256:{}", "0".repeat(63)), "wrong length"),
        (format!("sha256:{}", "0".repeat(65)), "wrong length"),
        (format!("sha512:{}", "0".repeat(64)), "wrong length"),
        (format!("sha256:{}", "G".repeat(64)), "lower-case hex"),
        (format!("sha256:{}", "A".repeat(64)), "lower-case hex"),
        (format!("sha256+b64:{}", "0".repeat(64)), "unsupported"),
        (format!("-sha:{}", "0".repeat(64)), "malformed"),
        (format!("sha256:{}@x", "0".repeat(64)), "wrong length"),
    ];
    for (d, problem) in &bad {
        let err = Reference::parse(&format!("x@{d}")).unwrap_err();
        assert_eq!(err.kind_name(), "invalid_digest", "{d}");
        assert!(err.to_string().contains(problem), "{d}: {err}");
    }
}
