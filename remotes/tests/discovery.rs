//! Discovery and management through `DockerResolver::registry_repository` and `catalog`,
//! against docker-registry 2.8.2 and ferro-oci-server: `Link` pagination, existence,
//! deletes and their refusals, branched on by error code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use dist_remotes::{DockerResolver, Error, ErrorCode, ErrorKind, ListOptions};
use dist_test_support::conformance::{Conformance, Flavor};
use dist_test_support::{AuthMode, FaultServer, FerroRegistry, Registry, Reply};
use oci_spec::image::Digest;

use common::options;

fn resolver(host: &str) -> DockerResolver {
    DockerResolver::new(options(host, AuthMode::None, ""))
}

/// Pushes `tags` (each its own manifest without layers) to `repo`: their digests.
async fn seed(host: &str, flavor: Flavor, repo: &str, tags: &[&str]) -> Vec<String> {
    let c = Conformance::new(host, flavor, "seed").unwrap();
    let mut out = Vec::new();
    for t in tags {
        out.push(c.push_empty_image(repo, t).await.unwrap());
    }
    out
}

const SEVEN: [&str; 7] = ["a1", "a2", "a3", "a4", "a5", "a6", "a7"];

#[tokio::test]
async fn tags_follow_link_pagination_across_four_pages_on_ferro() {
    let reg = FerroRegistry::start().unwrap();
    let host = reg.host();
    seed(&host, Flavor::Ferro, "disc/tags", &SEVEN).await;
    let repo = resolver(&host)
        .registry_repository(&format!("{host}/disc/tags"))
        .await
        .unwrap();
    // Pages of 2: seven tags take four pages, so three pages are not enough.
    let paged = ListOptions::default().with_page_size(2);
    let tags = repo.tags(&paged.with_max_pages(4)).await.unwrap();
    assert_eq!(tags, SEVEN);
    let err = repo.tags(&paged.with_max_pages(3)).await.unwrap_err();
    assert!(matches!(err, Error::Limit { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
}

#[tokio::test]
async fn docker_registry_ignores_n_and_lists_every_tag_in_one_page() {
    let reg = Registry::start(AuthMode::None).unwrap();
    let host = reg.host();
    seed(&host, Flavor::Distribution, "disc/tags", &SEVEN).await;
    let repo = resolver(&host)
        .registry_repository(&format!("{host}/disc/tags"))
        .await
        .unwrap();
    let one_page = ListOptions::default().with_page_size(2).with_max_pages(1);
    let mut tags = repo.tags(&one_page).await.unwrap();
    tags.sort();
    assert_eq!(tags, SEVEN);
}

#[tokio::test]
async fn catalog_follows_link_pagination_on_both_registries() {
    let dist = Registry::start(AuthMode::None).unwrap();
    let ferro = FerroRegistry::start().unwrap();
    for (host, flavor) in [
        (dist.host(), Flavor::Distribution),
        (ferro.host(), Flavor::Ferro),
    ] {
        let names = ["cat/a", "cat/b", "cat/c", "cat/d"];
        for n in names {
            seed(&host, flavor, n, &["v1"]).await;
        }
        let r = resolver(&host);
        let paged = ListOptions::default().with_page_size(1);
        let all = r.catalog(&host, &paged).await.unwrap();
        assert_eq!(all, names, "{flavor:?}");
        let err = r
            .catalog(&host, &paged.with_max_pages(3))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Limit { .. }), "{flavor:?}: {err}");
    }
}

#[tokio::test]
async fn heads_report_presence_with_descriptors_and_absence_as_none() {
    let dist = Registry::start(AuthMode::None).unwrap();
    let ferro = FerroRegistry::start().unwrap();
    for (host, flavor) in [
        (dist.host(), Flavor::Distribution),
        (ferro.host(), Flavor::Ferro),
    ] {
        let digest = seed(&host, flavor, "disc/heads", &["v1"]).await.remove(0);
        let repo = resolver(&host)
            .registry_repository(&format!("{host}/disc/heads"))
            .await
            .unwrap();
        let by_tag = repo
            .head_manifest("v1")
            .await
            .unwrap()
            .expect("v1 is there");
        assert_eq!(by_tag.digest().to_string(), digest, "{flavor:?}");
        assert_eq!(
            by_tag.media_type().to_string(),
            "application/vnd.oci.image.manifest.v1+json"
        );
        let by_digest = repo
            .head_manifest(&digest)
            .await
            .unwrap()
            .expect("by digest");
        assert_eq!(by_digest, by_tag);
        assert!(
            repo.head_manifest("v2").await.unwrap().is_none(),
            "{flavor:?}"
        );

        // The `{}` config the seed pushed is a blob of 2 bytes.
        let config: Digest = dist_test_support::sha256(b"{}").parse().unwrap();
        let blob = repo.head_blob(&config).await.unwrap().expect("config blob");
        assert_eq!(blob.size(), 2);
        let missing: Digest = dist_test_support::sha256(b"absent").parse().unwrap();
        assert!(repo.head_blob(&missing).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_deleted_manifest_is_manifest_unknown_by_code_on_both_registries() {
    let dist = Registry::start(AuthMode::None).unwrap();
    let ferro = FerroRegistry::start().unwrap();
    for (host, flavor) in [
        (dist.host(), Flavor::Distribution),
        (ferro.host(), Flavor::Ferro),
    ] {
        let digest = seed(&host, flavor, "disc/del", &["doomed"]).await.remove(0);
        let repo = resolver(&host)
            .registry_repository(&format!("{host}/disc/del"))
            .await
            .unwrap();
        let digest: Digest = digest.parse().unwrap();
        repo.delete_manifest(&digest).await.unwrap();
        assert!(
            repo.head_manifest("doomed").await.unwrap().is_none(),
            "{flavor:?}"
        );
        let err = repo.delete_manifest(&digest).await.unwrap_err();
        match err.code() {
            Some(ErrorCode::ManifestUnknown) => {}
            other => panic!("{flavor:?}: code {other:?}: {err}"),
        }
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(matches!(err, Error::Registry { status: 404, .. }), "{err}");

        // Not the `{}` config: ferro serves that empty blob whatever is deleted.
        let c = Conformance::new(&host, flavor, "seed").unwrap();
        let blob = c.push_blob("disc/del", b"a layer to delete").await.unwrap();
        let blob: Digest = blob.parse().unwrap();
        repo.delete_blob(&blob).await.unwrap();
        assert!(repo.head_blob(&blob).await.unwrap().is_none(), "{flavor:?}");
        let err = repo.delete_blob(&blob).await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(&ErrorCode::BlobUnknown),
            "{flavor:?}: {err}"
        );
    }
}

#[tokio::test]
async fn tag_deletes_are_refused_with_typed_codes_and_the_tag_survives() {
    let ferro = FerroRegistry::start().unwrap();
    let host = ferro.host();
    seed(&host, Flavor::Ferro, "disc/keep", &["kept"]).await;
    let repo = resolver(&host)
        .registry_repository(&format!("{host}/disc/keep"))
        .await
        .unwrap();
    let err = repo.delete_tag("kept").await.unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::Unsupported), "{err}");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    assert!(matches!(err, Error::Registry { status: 405, .. }), "{err}");
    assert!(repo.head_manifest("kept").await.unwrap().is_some());

    let dist = Registry::start(AuthMode::None).unwrap();
    let host = dist.host();
    seed(&host, Flavor::Distribution, "disc/keep", &["kept"]).await;
    let repo = resolver(&host)
        .registry_repository(&format!("{host}/disc/keep"))
        .await
        .unwrap();
    let err = repo.delete_tag("kept").await.unwrap_err();
    assert!(matches!(err, Error::Registry { status: 400, .. }), "{err}");
    assert!(repo.head_manifest("kept").await.unwrap().is_some());
}

#[tokio::test]
async fn unknown_repositories_list_as_name_unknown_or_empty() {
    let dist = Registry::start(AuthMode::None).unwrap();
    let host = dist.host();
    let repo = resolver(&host)
        .registry_repository(&format!("{host}/never/pushed"))
        .await
        .unwrap();
    let err = repo.tags(&ListOptions::default()).await.unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::NameUnknown), "{err}");
    assert_eq!(err.kind(), ErrorKind::NotFound);

    let ferro = FerroRegistry::start().unwrap();
    let host = ferro.host();
    let repo = resolver(&host)
        .registry_repository(&format!("{host}/never/pushed"))
        .await
        .unwrap();
    assert!(repo.tags(&ListOptions::default()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_link_to_another_host_is_refused() {
    let server = FaultServer::start(|req, _| {
        if req.path().ends_with("/tags/list") {
            Reply::ok(br#"{"name":"x/y","tags":["a"]}"#.to_vec()).header(
                "link",
                r#"<http://attacker.example/v2/x/y/tags/list?last=a>; rel="next""#,
            )
        } else {
            Reply::status(404)
        }
    })
    .unwrap();
    let host = server.host();
    let repo = resolver(&host)
        .registry_repository(&format!("{host}/x/y"))
        .await
        .unwrap();
    let err = repo.tags(&ListOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.to_string().contains("another origin"), "{err}");
    // Only the first page was asked for.
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_page_over_the_byte_limit_is_refused() {
    let reg = FerroRegistry::start().unwrap();
    let host = reg.host();
    seed(&host, Flavor::Ferro, "disc/big", &SEVEN).await;
    let repo = resolver(&host)
        .registry_repository(&format!("{host}/disc/big"))
        .await
        .unwrap();
    let err = repo
        .tags(&ListOptions::default().with_max_page_bytes(16))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Limit { .. }), "{err}");
}

#[tokio::test]
async fn a_repository_name_with_a_tag_is_refused() {
    let r = resolver("127.0.0.1:1");
    let err = r
        .registry_repository("127.0.0.1:1/x/y:v1")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

/// Tags, catalog, heads and a delete with each auth mode's credentials: the catalog asks for
/// `registry:catalog:*` and deletes for `repository:<name>:delete`, which the token server
/// must be asked for explicitly.
#[tokio::test]
async fn discovery_and_deletes_work_in_every_auth_mode() {
    use dist_test_support::{OciLayout, Platform, Push};
    for mode in [AuthMode::None, AuthMode::Htpasswd, AuthMode::Token] {
        let reg = Registry::start(mode).unwrap();
        let mut layout = OciLayout::new().unwrap();
        let img = layout
            .add_image(Some("v1"), &Platform::new("linux", "amd64"), &[("f", b"x")])
            .unwrap();
        for tag in ["v1", "v2", "v3"] {
            reg.push(layout.path(), "v1", &format!("auth/img:{tag}"), Push::oci())
                .unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
        }
        let host = reg.host();
        let r = common::resolver(&reg);
        let repo = r
            .registry_repository(&format!("{host}/auth/img"))
            .await
            .unwrap();
        let mut tags = repo.tags(&ListOptions::default()).await.unwrap();
        tags.sort();
        assert_eq!(tags, ["v1", "v2", "v3"], "{mode:?}");
        let catalog = r.catalog(&host, &ListOptions::default()).await.unwrap();
        assert_eq!(catalog, ["auth/img"], "{mode:?}");
        let desc = repo.head_manifest("v1").await.unwrap().expect("v1");
        assert_eq!(desc.digest(), img.root.digest(), "{mode:?}");
        repo.delete_manifest(desc.digest()).await.unwrap();
        assert!(
            repo.head_manifest("v2").await.unwrap().is_none(),
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn a_huge_error_body_is_read_within_bounds_and_quoted_elided() {
    let message = "m".repeat(8 << 20);
    let body = format!(r#"{{"errors":[{{"code":"DENIED","message":"{message}"}}]}}"#);
    let server = FaultServer::start(move |_, _| Reply::Full {
        status: 403,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.clone().into_bytes(),
    })
    .unwrap();
    let host = server.host();
    let repo = resolver(&host)
        .registry_repository(&format!("{host}/x/y"))
        .await
        .unwrap();
    let digest: Digest = dist_test_support::sha256(b"x").parse().unwrap();
    let err = repo.delete_manifest(&digest).await.unwrap_err();
    // The body was cut at 64 KiB, so it is not whole JSON any more: the code before the
    // cut still counts, and the quoted text is elided.
    assert_eq!(err.code(), Some(&ErrorCode::Denied), "{err}");
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(
        err.to_string().len() < 1024,
        "{} bytes",
        err.to_string().len()
    );
}
