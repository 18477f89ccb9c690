//! containerd's `reference.Spec` forms: locator and object, conversions to and from
//! `Reference`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dist_reference::{Error, Reference, Spec, normalize};

const SHA: &str = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";

/// (input, locator, object, hostname, repository, tag, digest)
type Row = (
    String,
    &'static str,
    String,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

fn seed_forms() -> Vec<Row> {
    vec![
        (
            "docker.io/library/redis:latest".into(),
            "docker.io/library/redis",
            "latest".into(),
            "docker.io",
            "library/redis",
            Some("latest"),
            None,
        ),
        (
            format!("localhost:5000/a/b@{SHA}"),
            "localhost:5000/a/b",
            format!("@{SHA}"),
            "localhost:5000",
            "a/b",
            None,
            Some(SHA),
        ),
        (
            format!("example.com/x:v1@{SHA}"),
            "example.com/x",
            format!("v1@{SHA}"),
            "example.com",
            "x",
            Some("v1"),
            Some(SHA),
        ),
        (
            "[::1]:5000/x:y".into(),
            "[::1]:5000/x",
            "y".into(),
            "[::1]:5000",
            "x",
            Some("y"),
            None,
        ),
        (
            "example.com/x".into(),
            "example.com/x",
            String::new(),
            "example.com",
            "x",
            None,
            None,
        ),
        (
            "localhost/x:1".into(),
            "localhost/x",
            "1".into(),
            "localhost",
            "x",
            Some("1"),
            None,
        ),
        (
            "gcr.io/a/b/c:1.0".into(),
            "gcr.io/a/b/c",
            "1.0".into(),
            "gcr.io",
            "a/b/c",
            Some("1.0"),
            None,
        ),
    ]
}

#[test]
fn seed_forms_split_into_locator_and_object() {
    for (input, locator, object, host, repo, tag, digest) in seed_forms() {
        let spec = Spec::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(spec.locator, locator, "{input}");
        assert_eq!(spec.object, object, "{input}");
        assert_eq!(spec.hostname(), host, "{input}");
        assert_eq!(spec.repository(), repo, "{input}");
        assert_eq!(spec.tag(), tag, "{input}");
        assert_eq!(spec.digest(), digest, "{input}");
        assert_eq!(spec.to_string(), input, "{input} round trip");
        assert_eq!(input.parse::<Spec>().unwrap(), spec);
    }
}

#[test]
fn spec_and_reference_convert_both_ways() {
    for (input, ..) in seed_forms() {
        let reference = Reference::parse(&input).unwrap();
        let spec = Spec::from(&reference);
        assert_eq!(spec, Spec::parse(&input).unwrap());
        assert_eq!(Reference::try_from(&spec).unwrap(), reference);
        assert_eq!(Reference::try_from(spec.clone()).unwrap(), reference);
        assert_eq!(Spec::from(reference), spec);
    }
}

#[test]
fn names_without_a_host_are_refused() {
    for input in [
        "redis",
        "redis:latest",
        "library/redis",
        "user/app:v1",
        "a/b/c",
    ] {
        assert_eq!(
            Spec::parse(input),
            Err(Error::MissingHostname {
                input: input.into()
            }),
            "{input}"
        );
    }
}

#[test]
fn normalised_familiar_names_become_specs() {
    let spec = Spec::from(&normalize("redis").unwrap());
    assert_eq!(spec.locator, "docker.io/library/redis");
    assert_eq!(spec.object, "latest");
    assert_eq!(Spec::parse(&spec.to_string()).unwrap(), spec);
}

#[test]
fn grammar_errors_pass_through() {
    let cases = [
        ("", "empty"),
        ("example.com/App:1", "name_contains_uppercase"),
        ("example.com/x:bad~tag", "invalid_tag"),
        ("example.com/x@sha256:abc", "invalid_digest"),
        ("example.com//x", "invalid_format"),
        ("example.com/x/", "invalid_format"),
        ("host:port/x", "invalid_domain"),
    ];
    for (input, kind) in cases {
        assert_eq!(Spec::parse(input).unwrap_err().kind_name(), kind, "{input}");
    }
}

#[test]
fn hand_built_spec_reads_its_fields_and_validates_on_conversion() {
    let spec = Spec {
        locator: "example.com".into(),
        object: String::new(),
    };
    assert_eq!(spec.hostname(), "example.com");
    assert_eq!(spec.repository(), "");
    assert_eq!(spec.tag(), None);
    assert_eq!(spec.digest(), None);

    let bad = Spec {
        locator: "example.com/x".into(),
        object: "bad~tag".into(),
    };
    assert_eq!(bad.to_string(), "example.com/x:bad~tag");
    assert_eq!(
        Reference::try_from(&bad).unwrap_err().kind_name(),
        "invalid_tag"
    );
}
