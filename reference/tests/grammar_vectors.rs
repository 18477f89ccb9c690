//! The test tables of distribution/reference's `regexp_test.go`, as data, checked through
//! the public parser (there is no regex to test directly: the grammar is hand-written).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dist_reference::{Error, Reference, normalize};

/// An input and, when it is a name, its (domain, path) (`None` path: not stated by Go).
type NameCase = (&'static str, Option<(&'static str, Option<&'static str>)>);

/// An input and, when it is a reference, its (name, tag, digest).
type ReferenceCase = (String, Option<(&'static str, &'static str, &'static str)>);

/// `TestDomainRegexp`: `input` is accepted as the domain of `input/x` exactly when Go's
/// domain-and-port regexp matches it.
#[test]
fn domain_grammar_matches_distribution() {
    let cases = [
        ("test.com", true),
        ("test.com:10304", true),
        ("test.com:http", false),
        ("localhost", true),
        ("localhost:8080", true),
        ("a", true),
        ("a.b", true),
        ("ab.cd.com", true),
        ("a-b.com", true),
        ("-ab.com", false),
        ("ab-.com", false),
        ("ab.c-om", true),
        ("ab.-com", false),
        ("ab.com-", false),
        ("0101.com", true),
        ("001a.com", true),
        ("b.gbc.io:443", true),
        ("b.gbc.io", true),
        ("xn--n3h.com", true),
        ("Asdf.com", true),
        ("192.168.1.1:75050", true),
        ("192.168.1.1:750050", true),
        ("[fd00:1:2::3]:75050", true),
        ("[fd00:1:2::3]75050", false),
        ("[fd00:1:2::3]::75050", false),
        ("[fd00:1:2::3%eth0]:75050", false),
        ("[fd00123123123]:75050", true),
        ("[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:75050", true),
        ("[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:750505", true),
        ("fd00:1:2::3:75050", false),
    ];
    for (domain, matches) in cases {
        let input = format!("{domain}/x");
        let got = Reference::parse(&input);
        let is_domain = matches!(&got, Ok(r) if r.domain() == Some(domain));
        assert_eq!(is_domain, matches, "{input:?}: {got:?}");
        if !matches {
            // Not a domain: either refused, or a plain path (never a different domain).
            assert!(
                got.is_err() || matches!(&got, Ok(r) if r.domain().is_none()),
                "{input:?}: {got:?}"
            );
        }
    }
}

/// `TestFullNameRegexp`: `Some((domain, path))` when the input is a valid name with those
/// parts (domain `""` for none; `None` path when Go does not state the parts), `None` when
/// it is not a name.
#[test]
fn name_grammar_matches_distribution() {
    let long = format!("{}a", "a/".repeat(128));
    let long_path = format!("{}a", "a/".repeat(127));
    let cases: Vec<NameCase> = vec![
        ("", None),
        ("short", Some(("", Some("short")))),
        ("simple/name", Some(("simple", Some("name")))),
        ("library/ubuntu", Some(("library", Some("ubuntu")))),
        (
            "docker/stevvooe/app",
            Some(("docker", Some("stevvooe/app"))),
        ),
        (
            "aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb",
            Some(("aa", Some("aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb"))),
        ),
        ("aa/aa/bb/bb/bb", Some(("aa", Some("aa/bb/bb/bb")))),
        ("a/a/a/a", Some(("a", Some("a/a/a")))),
        ("a/a/a/a/", None),
        ("a//a/a", None),
        ("a", Some(("", Some("a")))),
        ("a/aa", Some(("a", Some("aa")))),
        ("a/aa/a", Some(("a", Some("aa/a")))),
        ("foo.com", Some(("", Some("foo.com")))),
        ("foo.com/", None),
        ("foo.com:8080/bar", Some(("foo.com:8080", Some("bar")))),
        ("foo.com:http/bar", None),
        ("foo.com/bar", Some(("foo.com", Some("bar")))),
        ("foo.com/bar/baz", Some(("foo.com", Some("bar/baz")))),
        ("localhost:8080/bar", Some(("localhost:8080", Some("bar")))),
        (
            "sub-dom1.foo.com/bar/baz/quux",
            Some(("sub-dom1.foo.com", Some("bar/baz/quux"))),
        ),
        (
            "blog.foo.com/bar/baz",
            Some(("blog.foo.com", Some("bar/baz"))),
        ),
        ("a^a", None),
        ("aa/asdf$$^/aa", None),
        ("asdf$$^/aa", None),
        ("aa-a/a", Some(("aa-a", Some("a")))),
        // (the 257-character name matches the regexp; the length limit is checked below)
        ("a-/a/a/a", None),
        ("foo.com/a-/a/a", None),
        ("-foo/bar", None),
        ("foo/bar-", None),
        ("foo-/bar", None),
        ("foo/-bar", None),
        ("_foo/bar", None),
        ("foo_bar", Some(("", Some("foo_bar")))),
        ("foo_bar.com", Some(("", Some("foo_bar.com")))),
        ("foo_bar.com:8080", None),
        ("foo_bar.com:8080/app", None),
        ("foo.com/foo_bar", Some(("foo.com", Some("foo_bar")))),
        ("____/____", None),
        ("_docker/_docker", None),
        ("docker_/docker_", None),
        (
            "b.gcr.io/test.example.com/my-app",
            Some(("b.gcr.io", Some("test.example.com/my-app"))),
        ),
        (
            "xn--n3h.com/myimage",
            Some(("xn--n3h.com", Some("myimage"))),
        ),
        (
            "xn--7o8h.com/myimage",
            Some(("xn--7o8h.com", Some("myimage"))),
        ),
        (
            "example.com/xn--7o8h.com/myimage",
            Some(("example.com", Some("xn--7o8h.com/myimage"))),
        ),
        (
            "example.com/some_separator__underscore/myimage",
            Some(("example.com", Some("some_separator__underscore/myimage"))),
        ),
        ("example.com/__underscore/myimage", None),
        ("example.com/..dots/myimage", None),
        ("example.com/.dots/myimage", None),
        ("example.com/nodouble..dots/myimage", None),
        ("docker./docker", None),
        (".docker/docker", None),
        ("docker-/docker", None),
        ("-docker/docker", None),
        ("do..cker/docker", None),
        ("do__cker:8080/docker", None),
        ("do__cker/docker", Some(("", Some("do__cker/docker")))),
        (
            "registry.io/foo/project--id.module--name.ver---sion--name",
            Some((
                "registry.io",
                Some("foo/project--id.module--name.ver---sion--name"),
            )),
        ),
        ("Asdf.com/foo/bar", Some(("Asdf.com", None))),
        ("Foo/FarB", None),
    ];
    for (input, want) in cases {
        let got = Reference::parse(input);
        match want {
            Some((domain, path)) => {
                let r = got.unwrap_or_else(|e| panic!("{input:?} should be a name: {e}"));
                assert_eq!(r.name(), input);
                assert_eq!(r.tag(), None, "{input:?}");
                assert_eq!(r.digest(), None, "{input:?}");
                assert_eq!(r.domain().unwrap_or(""), domain, "{input:?}");
                if let Some(path) = path {
                    assert_eq!(r.path(), path, "{input:?}");
                }
            }
            // Not a name: refused, or read as something else (a name with a tag).
            None => assert!(
                !matches!(&got, Ok(r) if r.name() == input),
                "{input:?} should not be a name: {got:?}"
            ),
        }
    }
    // The 257-character name matches Go's name regexp with this split; the length limit
    // (checked separately, as in Go's Parse) then refuses it.
    assert!(matches!(
        Reference::parse(&long),
        Err(Error::NameTooLong { len: 257, .. })
    ));
    let err = Reference::parse(&format!("x/{long_path}")).unwrap_err();
    assert_eq!(err.kind_name(), "name_too_long");
    let r = Reference::parse(&long_path).unwrap();
    assert_eq!((r.domain(), r.path()), (Some("a"), &long_path[2..]));
}

/// `TestReferenceRegexp`: `Some((name, tag, digest))` when the whole input is a reference.
#[test]
fn reference_grammar_matches_distribution() {
    let d = "sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912";
    let cases: Vec<ReferenceCase> = vec![
        (
            "registry.com:8080/myapp:tag".into(),
            Some(("registry.com:8080/myapp", "tag", "")),
        ),
        (
            format!("registry.com:8080/myapp@{d}"),
            Some(("registry.com:8080/myapp", "", d)),
        ),
        (
            format!("registry.com:8080/myapp:tag2@{d}"),
            Some(("registry.com:8080/myapp", "tag2", d)),
        ),
        ("registry.com:8080/myapp@sha256:badbadbadbad".into(), None),
        ("registry.com:8080/myapp:invalid~tag".into(), None),
        ("bad_hostname.com:8080/myapp:tag".into(), None),
        // localhost without a '/' is a name; 8080 is its tag.
        (
            format!("localhost:8080@{d}"),
            Some(("localhost", "8080", d)),
        ),
        (
            format!("localhost:8080/name@{d}"),
            Some(("localhost:8080/name", "", d)),
        ),
        (format!("localhost:http/name@{d}"), None),
        (format!("localhost@{d}"), Some(("localhost", "", d))),
        ("registry.com:8080/myapp@bad".into(), None),
        ("registry.com:8080/myapp@2bad".into(), None),
    ];
    for (input, want) in cases {
        let got = Reference::parse(&input);
        match want {
            Some((name, tag, digest)) => {
                let r = got.unwrap_or_else(|e| panic!("{input:?}: {e}"));
                assert_eq!(r.name(), name, "{input:?}");
                assert_eq!(r.tag().unwrap_or(""), tag, "{input:?}");
                assert_eq!(r.digest().unwrap_or(""), digest, "{input:?}");
            }
            None => assert!(got.is_err(), "{input:?} should be refused: {got:?}"),
        }
    }
}

/// The specific errors for the refused references above.
#[test]
fn refused_references_get_specific_errors() {
    let cases = [
        (
            "registry.com:8080/myapp@sha256:badbadbadbad",
            "invalid_digest",
        ),
        ("registry.com:8080/myapp:invalid~tag", "invalid_tag"),
        ("bad_hostname.com:8080/myapp:tag", "invalid_domain"),
        ("localhost:http/name", "invalid_domain"),
        ("registry.com:8080/myapp@bad", "invalid_digest"),
        ("registry.com:8080/myapp@2bad", "invalid_digest"),
        ("a//b", "invalid_format"),
        ("a/b/", "invalid_format"),
        ("/a", "invalid_format"),
    ];
    for (input, kind) in cases {
        assert_eq!(
            Reference::parse(input).unwrap_err().kind_name(),
            kind,
            "{input}"
        );
    }
}

/// `TestIdentifierRegexp`: only 64 lower-case hex characters count as an image ID, which
/// `normalize` refuses as a name.
#[test]
fn identifier_grammar_matches_distribution() {
    let cases = [
        (
            "da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf9821",
            true,
        ),
        (
            "7EC43B381E5AEFE6E04EFB0B3F0693FF2A4A50652D64AEC573905F2DB5889A1C",
            false,
        ),
        (
            "da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf",
            false,
        ),
        (
            "sha256:da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf9821",
            false,
        ),
        (
            "da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf98218482",
            false,
        ),
    ];
    for (input, is_id) in cases {
        let got = normalize(input);
        assert_eq!(
            matches!(got, Err(Error::LooksLikeImageId { .. })),
            is_id,
            "{input}: {got:?}"
        );
    }
}
