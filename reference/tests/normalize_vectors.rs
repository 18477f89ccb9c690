//! The test tables of distribution/reference's `normalize_test.go`, as data.
//!
//! Our `normalize` is Go's `ParseNormalizedNamed` plus the default tag (`latest` when
//! neither tag nor digest is given); a reference with both keeps both.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dist_reference::{Error, Reference, familiar_name, familiar_string, normalize};

/// `TestValidateReferenceName`.
#[test]
fn reference_names_valid_and_invalid() {
    let valid = [
        "docker/docker",
        "library/debian",
        "debian",
        "docker.io/docker/docker",
        "docker.io/library/debian",
        "docker.io/debian",
        "index.docker.io/docker/docker",
        "index.docker.io/library/debian",
        "index.docker.io/debian",
        "127.0.0.1:5000/docker/docker",
        "127.0.0.1:5000/library/debian",
        "127.0.0.1:5000/debian",
        "192.168.0.1",
        "192.168.0.1:80",
        "192.168.0.1:8/debian",
        "192.168.0.2:25000/debian",
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "[fc00::1]:5000/docker",
        "[fc00::1]:5000/docker/docker",
        "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
        // Valid with a host: no ambiguity with an image ID.
        "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "Docker/docker",
        "DOCKER/docker",
    ];
    let invalid = [
        "https://github.com/docker/docker",
        "docker/Docker",
        "-docker",
        "-docker/docker",
        "-docker.io/docker/docker",
        "docker///docker",
        "docker.io/docker/Docker",
        "docker.io/docker///docker",
        "[fc00::1]",
        "[fc00::1]:5000",
        "fc00::1:5000/debian",
        "[fe80::1%eth0]:5000/debian",
        "[2001:db8:3:4::192.0.2.33]:5000/debian",
        "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    ];
    for name in valid {
        normalize(name).unwrap_or_else(|e| panic!("{name:?} should be valid: {e}"));
    }
    for name in invalid {
        assert!(normalize(name).is_err(), "{name:?} should be invalid");
    }
}

/// `TestValidateRemoteName`.
#[test]
fn remote_names_valid_and_invalid() {
    let valid = [
        "docker/docker",
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "docker-rules/docker",
        "docker---rules/docker",
        "doc/docker",
        "d/docker",
        "jess/t",
        "dock__er/docker",
    ];
    let invalid = [
        ("docker/Docker", "name_contains_uppercase"),
        ("docker///docker", "invalid_format"),
        (
            "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "looks_like_image_id",
        ),
        ("-docker/docker", "invalid_format"),
        ("docker-/docker", "invalid_format"),
        ("-docker-/docker", "invalid_format"),
        ("____/____", "invalid_format"),
        ("_docker/_docker", "invalid_format"),
        ("dock..er/docker", "invalid_format"),
        ("dock_.er/docker", "invalid_format"),
        ("dock-.er/docker", "invalid_format"),
        ("docker/", "invalid_format"),
        (
            "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker",
            "name_too_long",
        ),
    ];
    for name in valid {
        normalize(name).unwrap_or_else(|e| panic!("{name:?} should be valid: {e}"));
    }
    for (name, kind) in invalid {
        let err = normalize(name).unwrap_err();
        assert_eq!(err.kind_name(), kind, "{name:?}: {err}");
    }
}

/// `TestParseRepositoryInfo`: every spelling normalises to the same name, domain and path,
/// and familiarises back to the short form.
#[test]
fn repository_info_from_familiar_full_and_ambiguous_names() {
    // (remote name, familiar name, full name, ambiguous name, domain)
    let cases = [
        (
            "fooo/bar",
            "fooo/bar",
            "docker.io/fooo/bar",
            "index.docker.io/fooo/bar",
            "docker.io",
        ),
        (
            "library/ubuntu",
            "ubuntu",
            "docker.io/library/ubuntu",
            "library/ubuntu",
            "docker.io",
        ),
        (
            "nonlibrary/ubuntu",
            "nonlibrary/ubuntu",
            "docker.io/nonlibrary/ubuntu",
            "",
            "docker.io",
        ),
        (
            "other/library",
            "other/library",
            "docker.io/other/library",
            "",
            "docker.io",
        ),
        (
            "private/moonbase",
            "127.0.0.1:8000/private/moonbase",
            "127.0.0.1:8000/private/moonbase",
            "",
            "127.0.0.1:8000",
        ),
        (
            "privatebase",
            "127.0.0.1:8000/privatebase",
            "127.0.0.1:8000/privatebase",
            "",
            "127.0.0.1:8000",
        ),
        (
            "private/moonbase",
            "example.com/private/moonbase",
            "example.com/private/moonbase",
            "",
            "example.com",
        ),
        (
            "privatebase",
            "example.com/privatebase",
            "example.com/privatebase",
            "",
            "example.com",
        ),
        (
            "private/moonbase",
            "example.com:8000/private/moonbase",
            "example.com:8000/private/moonbase",
            "",
            "example.com:8000",
        ),
        (
            "privatebasee",
            "example.com:8000/privatebasee",
            "example.com:8000/privatebasee",
            "",
            "example.com:8000",
        ),
        (
            "library/ubuntu-12.04-base",
            "ubuntu-12.04-base",
            "docker.io/library/ubuntu-12.04-base",
            "index.docker.io/library/ubuntu-12.04-base",
            "docker.io",
        ),
        (
            "library/foo",
            "foo",
            "docker.io/library/foo",
            "docker.io/foo",
            "docker.io",
        ),
        (
            "library/foo/bar",
            "library/foo/bar",
            "docker.io/library/foo/bar",
            "",
            "docker.io",
        ),
        (
            "store/foo/bar",
            "store/foo/bar",
            "docker.io/store/foo/bar",
            "",
            "docker.io",
        ),
        ("bar", "Foo/bar", "Foo/bar", "", "Foo"),
        ("bar", "FOO/bar", "FOO/bar", "", "FOO"),
    ];
    for (remote, familiar, full, ambiguous, domain) in cases {
        let mut spellings = vec![familiar, full];
        if !ambiguous.is_empty() {
            spellings.push(ambiguous);
        }
        for s in spellings {
            let r = normalize(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert_eq!(familiar_name(&r), familiar, "familiar name of {s:?}");
            assert_eq!(r.name(), full, "full name of {s:?}");
            assert_eq!(r.domain(), Some(domain), "domain of {s:?}");
            assert_eq!(r.path(), remote, "remote name of {s:?}");
            assert_eq!(r.tag(), Some("latest"), "default tag of {s:?}");
        }
    }
}

/// `TestParseReferenceWithTagAndDigest`.
#[test]
fn tag_and_digest_are_both_kept() {
    let short =
        "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";
    let r = normalize(short).unwrap();
    assert_eq!(r.to_string(), format!("docker.io/library/{short}"));
    assert_eq!(r.tag(), Some("latest"));
    assert!(r.digest().is_some());
    assert_eq!(familiar_string(&r), short);
}

/// `TestInvalidReferenceComponents` (name part; the tag and digest parts are in
/// `reference_vectors.rs`).
#[test]
fn leading_dash_is_not_a_name() {
    assert_eq!(normalize("-foo").unwrap_err().kind_name(), "invalid_format");
}

/// `TestParseAnyReference`, for the inputs that are names (our references always have a
/// name; bare digests are not references here).
#[test]
fn any_reference_names_normalise_like_distribution() {
    let d = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";
    let cases = [
        ("redis".to_owned(), "docker.io/library/redis:latest".to_owned()),
        (
            "redis:latest".into(),
            "docker.io/library/redis:latest".into(),
        ),
        (
            "docker.io/library/redis:latest".into(),
            "docker.io/library/redis:latest".into(),
        ),
        (format!("redis@{d}"), format!("docker.io/library/redis@{d}")),
        (
            format!("docker.io/library/redis@{d}"),
            format!("docker.io/library/redis@{d}"),
        ),
        (
            "dmcgowan/myapp".into(),
            "docker.io/dmcgowan/myapp:latest".into(),
        ),
        (
            "dmcgowan/myapp:latest".into(),
            "docker.io/dmcgowan/myapp:latest".into(),
        ),
        (
            "docker.io/mcgowan/myapp:latest".into(),
            "docker.io/mcgowan/myapp:latest".into(),
        ),
        (
            format!("dmcgowan/myapp@{d}"),
            format!("docker.io/dmcgowan/myapp@{d}"),
        ),
        (
            format!("docker.io/dmcgowan/myapp@{d}"),
            format!("docker.io/dmcgowan/myapp@{d}"),
        ),
        (
            "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9".into(),
            "docker.io/library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9:latest"
                .into(),
        ),
        ("dbcc1".into(), "docker.io/library/dbcc1:latest".into()),
    ];
    for (input, equivalent) in cases {
        let r = normalize(&input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(r.to_string(), equivalent, "{input:?}");
        assert_eq!(r, Reference::parse(&equivalent).unwrap(), "{input:?}");
    }
    // The 64-hex form Go reads as a bare digest is refused as a name.
    assert!(matches!(
        normalize(&d["sha256:".len()..]),
        Err(Error::LooksLikeImageId { .. })
    ));
}

/// `TestNormalizedSplitHostname`.
#[test]
fn normalized_domain_and_path() {
    let cases = [
        ("test.com/foo", "test.com", "foo"),
        ("test_com/foo", "docker.io", "test_com/foo"),
        ("docker/migrator", "docker.io", "docker/migrator"),
        ("test.com:8080/foo", "test.com:8080", "foo"),
        ("test-com:8080/foo", "test-com:8080", "foo"),
        ("foo", "docker.io", "library/foo"),
        ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
        ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
        ("docker.io/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
    ];
    for (input, domain, path) in cases {
        let r = normalize(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(r.domain(), Some(domain), "{input:?}");
        assert_eq!(r.path(), path, "{input:?}");
    }
}

/// `TestParseNamed`: a name is canonical when normalising leaves it unchanged.
#[test]
fn canonical_names_are_the_fixed_points_of_normalize() {
    let cases = [
        ("test.com/foo", Some(("test.com", "foo"))),
        ("test:8080/foo", Some(("test:8080", "foo"))),
        ("test_com/foo", None),
        ("test.com", None),
        ("foo", None),
        ("library/foo", None),
        ("docker.io/library/foo", Some(("docker.io", "library/foo"))),
        // Ambiguous: normalising adds "library/".
        ("docker.io/foo", None),
    ];
    for (input, want) in cases {
        let r = normalize(input).unwrap();
        match want {
            Some((domain, path)) => {
                assert_eq!(r.name(), input, "{input:?} is canonical");
                assert_eq!(r.domain(), Some(domain));
                assert_eq!(r.path(), path);
            }
            None => assert_ne!(r.name(), input, "{input:?} is not canonical"),
        }
    }
}

/// `TestParseDockerRef` (except that a reference with tag and digest keeps both here).
#[test]
fn docker_refs_get_domain_library_and_default_tag() {
    let d = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";
    let cases = [
        (
            "busybox".to_owned(),
            "docker.io/library/busybox:latest".to_owned(),
        ),
        (
            "busybox:latest".into(),
            "docker.io/library/busybox:latest".into(),
        ),
        (
            format!("busybox@{d}"),
            format!("docker.io/library/busybox@{d}"),
        ),
        (
            "library/busybox".into(),
            "docker.io/library/busybox:latest".into(),
        ),
        (
            "docker.io/busybox".into(),
            "docker.io/library/busybox:latest".into(),
        ),
        (
            "docker.io/library/busybox".into(),
            "docker.io/library/busybox:latest".into(),
        ),
        (
            "docker.io/busybox:latest".into(),
            "docker.io/library/busybox:latest".into(),
        ),
        (
            "library/busybox:latest".into(),
            "docker.io/library/busybox:latest".into(),
        ),
        (
            "docker.io/library/busybox:latest".into(),
            "docker.io/library/busybox:latest".into(),
        ),
        (
            "gcr.io/library/busybox".into(),
            "gcr.io/library/busybox:latest".into(),
        ),
        (
            format!("gcr.io/library/busybox:latest@{d}"),
            format!("gcr.io/library/busybox:latest@{d}"),
        ),
    ];
    for (input, expected) in cases {
        let r = normalize(&input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(r.to_string(), expected, "{input:?}");
        let shown = r.to_string();
        Reference::parse(&shown).unwrap();
    }
}

#[test]
fn localhost_and_registries_keep_their_host() {
    let cases = [
        ("localhost:5000/x", "localhost:5000/x:latest"),
        ("localhost/x", "localhost/x:latest"),
        ("[::1]:5000/x:y", "[::1]:5000/x:y"),
        ("index.docker.io/user/x:1", "docker.io/user/x:1"),
        ("user/x", "docker.io/user/x:latest"),
    ];
    for (input, expected) in cases {
        assert_eq!(normalize(input).unwrap().to_string(), expected, "{input}");
    }
}

#[test]
fn normalize_is_idempotent_and_familiar_string_inverts_it() {
    for s in [
        "redis",
        "redis:7",
        "user/app:v1",
        "library/foo/bar:1",
        "example.com/a/b:c",
        "localhost:5000/x",
    ] {
        let once = normalize(s).unwrap();
        let shown = once.to_string();
        let twice = normalize(&shown).unwrap();
        assert_eq!(once, twice, "{s}");
        assert_eq!(normalize(&familiar_string(&once)).unwrap(), once, "{s}");
    }
}

#[test]
fn normalize_errors_report_the_callers_text() {
    let err = normalize("redis:bad~tag").unwrap_err();
    assert_eq!(
        err,
        Error::InvalidTag {
            input: "redis:bad~tag".into(),
            tag: "bad~tag".into()
        }
    );
    assert!(err.to_string().contains("\"redis:bad~tag\""), "{err}");
    assert_eq!(normalize(""), Err(Error::Empty));
}
