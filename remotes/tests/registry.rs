//! Resolve and fetch against a real `docker-registry`, in every auth mode.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use dist_remotes::{DockerResolver, ErrorKind, Resolver};
use dist_test_support::{AuthMode, OciLayout, Platform, Push, Registry};

use common::{fetch_all, options, options_for, resolver};

/// Pushes one OCI image (`img:v1`), the same as Docker schema 2 (`img:v2s2`), and a
/// two-platform index (`multi:v1`); returns the layout's objects.
fn populate(reg: &Registry) -> (dist_test_support::Built, dist_test_support::Built) {
    let mut layout = OciLayout::new().unwrap();
    let img = layout
        .add_image(
            Some("v1"),
            &Platform::new("linux", "amd64"),
            &[("hello.txt", b"hello registry\n"), ("etc/x", b"x")],
        )
        .unwrap();
    let index = layout
        .add_index(
            "multi",
            &[
                Platform::new("linux", "amd64"),
                Platform::new("linux", "arm64"),
            ],
        )
        .unwrap();
    reg.push(layout.path(), "v1", "test/img:v1", Push::oci())
        .unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    reg.push(
        layout.path(),
        "v1",
        "test/img:v2s2",
        Push::oci().docker_v2s2(),
    )
    .unwrap();
    reg.push(layout.path(), "multi", "test/multi:v1", Push::oci().all())
        .unwrap();
    (img, index)
}

async fn resolve_and_fetch_in(mode: AuthMode) {
    let reg = Registry::start(mode).unwrap();
    let (img, index) = populate(&reg);
    let host = reg.host();
    let r = resolver(&reg);

    // By tag: the OCI manifest as pushed, byte for byte.
    let (name, desc) = r.resolve(&format!("{host}/test/img:v1")).await.unwrap();
    assert_eq!(desc.digest(), img.root.digest());
    assert_eq!(desc.size(), img.root.size());
    assert_eq!(desc.media_type(), img.root.media_type());
    let f = r.fetcher(&name).await.unwrap();
    assert_eq!(fetch_all(f.as_ref(), &desc).await.unwrap(), img.root_bytes);

    // Every blob below it.
    for child in &img.children {
        let data = fetch_all(f.as_ref(), child).await.unwrap();
        assert_eq!(data.len() as u64, child.size());
    }

    // By digest.
    let by_digest = format!("{host}/test/img@{}", img.root.digest());
    let (_, d2) = r.resolve(&by_digest).await.unwrap();
    assert_eq!(d2, desc);

    // Docker schema 2: a different manifest with Docker media types.
    let (_, v2) = r.resolve(&format!("{host}/test/img:v2s2")).await.unwrap();
    assert_eq!(
        v2.media_type().to_string(),
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let raw = fetch_all(f.as_ref(), &v2).await.unwrap();
    assert_eq!(raw, reg.inspect_raw("test/img:v2s2").unwrap());

    // The index and each platform's manifest.
    let (mname, idx) = r.resolve(&format!("{host}/test/multi:v1")).await.unwrap();
    assert_eq!(idx.digest(), index.root.digest());
    let mf = r.fetcher(&mname).await.unwrap();
    assert_eq!(
        fetch_all(mf.as_ref(), &idx).await.unwrap(),
        index.root_bytes
    );
    for m in &index.children {
        assert_eq!(
            fetch_all(mf.as_ref(), m).await.unwrap().len() as u64,
            m.size()
        );
    }
}

#[tokio::test]
async fn resolves_and_fetches_by_tag_and_digest_without_auth() {
    resolve_and_fetch_in(AuthMode::None).await;
}

#[tokio::test]
async fn resolves_and_fetches_by_tag_and_digest_with_htpasswd() {
    resolve_and_fetch_in(AuthMode::Htpasswd).await;
}

#[tokio::test]
async fn resolves_and_fetches_by_tag_and_digest_with_token_auth() {
    resolve_and_fetch_in(AuthMode::Token).await;
}

#[tokio::test]
async fn fetched_manifest_bytes_equal_skopeo_inspect_raw() {
    let reg = Registry::start(AuthMode::None).unwrap();
    populate(&reg);
    let r = resolver(&reg);
    for reference in ["test/img:v1", "test/img:v2s2", "test/multi:v1"] {
        let (name, desc) = r
            .resolve(&format!("{}/{reference}", reg.host()))
            .await
            .unwrap();
        let f = r.fetcher(&name).await.unwrap();
        let ours = fetch_all(f.as_ref(), &desc).await.unwrap();
        assert_eq!(ours, reg.inspect_raw(reference).unwrap(), "{reference}");
    }
}

#[tokio::test]
async fn missing_tag_is_not_found() {
    let reg = Registry::start(AuthMode::None).unwrap();
    populate(&reg);
    let err = resolver(&reg)
        .resolve(&format!("{}/test/img:nope", reg.host()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = resolver(&reg)
        .resolve(&format!("{}/test/absent:v1", reg.host()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn digest_reference_that_the_registry_does_not_serve_is_not_found() {
    let reg = Registry::start(AuthMode::None).unwrap();
    populate(&reg);
    let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let err = resolver(&reg)
        .resolve(&format!("{}/test/img@{other}", reg.host()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

async fn wrong_password_in(mode: AuthMode) {
    let reg = Registry::start(mode).unwrap();
    populate(&reg);
    let host = reg.host();
    let r = DockerResolver::new(options_for(&reg, "wrong password"));
    let err = r.resolve(&format!("{host}/test/img:v1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(err.to_string().contains(&host), "{err}");
}

#[tokio::test]
async fn wrong_password_is_unauthorized_naming_the_host_with_htpasswd() {
    wrong_password_in(AuthMode::Htpasswd).await;
}

#[tokio::test]
async fn wrong_password_is_unauthorized_naming_the_host_with_token_auth() {
    wrong_password_in(AuthMode::Token).await;
}

#[tokio::test]
async fn no_credentials_is_unauthorized_in_both_auth_modes() {
    for mode in [AuthMode::Htpasswd, AuthMode::Token] {
        let reg = Registry::start(mode).unwrap();
        populate(&reg);
        let host = reg.host();
        let r = DockerResolver::new(options(&host, AuthMode::None, ""));
        let err = r.resolve(&format!("{host}/test/img:v1")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{mode:?}: {err}");
        assert!(err.to_string().contains(&host), "{err}");
        if mode == AuthMode::Token {
            assert!(err.to_string().contains("no credentials"), "{err}");
        }
    }
}

#[tokio::test]
async fn a_refresh_token_is_exchanged_with_an_oauth_post_and_tokens_are_cached() {
    let reg = Registry::start(AuthMode::Token).unwrap();
    let (img, _) = populate(&reg);
    let host = reg.host();
    let mut opts = options_for(&reg, "unused");
    opts.credentials = std::sync::Arc::new(dist_remotes::StaticCredentials::new().with(
        host.clone(),
        dist_remotes::Credential::RefreshToken {
            username: dist_test_support::USERNAME.into(),
            token: dist_test_support::REFRESH_TOKEN.into(),
        },
    ));
    let issuer = reg.token_issuer().unwrap();
    let before = issuer.requests().len();
    let r = DockerResolver::new(opts);
    let (name, desc) = r.resolve(&format!("{host}/test/img:v1")).await.unwrap();
    let f = r.fetcher(&name).await.unwrap();
    fetch_all(f.as_ref(), &desc).await.unwrap();
    for child in &img.children {
        fetch_all(f.as_ref(), child).await.unwrap();
    }
    let reqs = &issuer.requests()[before..];
    assert_eq!(reqs.len(), 1, "one token for the whole pull");
    assert_eq!(reqs[0].method, "POST");
    let body = String::from_utf8_lossy(&reqs[0].body).to_string();
    assert!(body.contains("grant_type=refresh_token"), "{body}");
    assert!(reqs[0].header("authorization").is_none());
}

#[tokio::test]
async fn parallel_ranged_fetch_of_a_big_layer_matches_the_registry() {
    let reg = Registry::start(AuthMode::None).unwrap();
    let mut layout = OciLayout::new().unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let img = layout
        .add_image(
            Some("big"),
            &Platform::new("linux", "amd64"),
            &[("big.bin", &big)],
        )
        .unwrap();
    reg.push(layout.path(), "big", "test/big:v1", Push::oci())
        .unwrap();
    let host = reg.host();
    let opts = options(&host, AuthMode::None, "")
        .with_parallel(Some(dist_remotes::ParallelFetch::new(100_000, 32 << 10, 4)));
    let r = DockerResolver::new(opts);
    let (name, _) = r.resolve(&format!("{host}/test/big:v1")).await.unwrap();
    let f = r.fetcher(&name).await.unwrap();
    let layer = img.children.last().unwrap();
    assert!(layer.size() > 100_000, "layer is {} bytes", layer.size());
    let got = fetch_all(f.as_ref(), layer).await.unwrap();
    assert_eq!(got.len() as u64, layer.size());
}

#[tokio::test]
async fn credentials_from_a_docker_config_file_are_used_in_both_auth_modes() {
    use base64::Engine;
    for mode in [AuthMode::Htpasswd, AuthMode::Token] {
        let reg = Registry::start(mode).unwrap();
        populate(&reg);
        let host = reg.host();
        let dir = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode(reg.creds().unwrap());
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            format!(r#"{{"auths":{{"http://{host}/":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        let cfg = dist_remotes::DockerConfig::from_file(&path).unwrap();
        resolves_with(&reg, cfg).await;
    }
}

/// Resolves a tag of `reg` with credentials from `cfg` only.
async fn resolves_with(reg: &Registry, cfg: dist_remotes::DockerConfig) {
    let opts = options_for(reg, "ignored").with_credentials(std::sync::Arc::new(cfg));
    let (_, desc) = DockerResolver::new(opts)
        .resolve(&format!("{}/test/img:v1", reg.host()))
        .await
        .unwrap();
    assert!(desc.size() > 0, "{:?}", reg.host());
}

#[tokio::test]
async fn credentials_from_a_docker_credential_helper_are_used_in_both_auth_modes() {
    use std::os::unix::fs::PermissionsExt;
    for mode in [AuthMode::Htpasswd, AuthMode::Token] {
        let reg = Registry::start(mode).unwrap();
        populate(&reg);
        let host = reg.host();
        let (user, pass) = reg
            .creds()
            .unwrap()
            .split_once(':')
            .map(|(u, p)| (u.to_owned(), p.to_owned()))
            .unwrap();
        // A helper as `docker login` with `credsStore` would use: asked `get`, the server
        // on stdin, JSON on stdout.
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-test");
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\nread -r server\n[ \"$1\" = get ] && [ \"$server\" = '{host}' ] || {{ echo 'credentials not found'; exit 1; }}\necho '{{\"ServerURL\":\"{host}\",\"Username\":\"{user}\",\"Secret\":\"{pass}\"}}'\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.path().join("config.json");
        std::fs::write(&config, r#"{"credsStore": "test"}"#).unwrap();
        let cfg = dist_remotes::DockerConfig::from_file(&config)
            .unwrap()
            .with_helper_dir(dir.path());
        resolves_with(&reg, cfg).await;
    }
}
