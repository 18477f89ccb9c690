//! One manifest size limit: the `dist_images::Limits` a runtime configures once bounds the
//! resolver, the fetcher and the readers of stored manifests alike.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{collect, desc, fault_fetcher, fault_options, manifest_server};
use dist_content::LocalStore;
use dist_images::media_types::OCI_MANIFEST;
use dist_images::{Handler, Limits, MAX_MANIFEST_SIZE, children};
use dist_remotes::{
    DEFAULT_MAX_MANIFEST_SIZE, DockerResolver, ErrorKind, Resolver, ResolverOptions,
};
use oci_spec::image::MediaType;

#[test]
fn the_resolver_default_is_the_images_default() {
    assert_eq!(DEFAULT_MAX_MANIFEST_SIZE, MAX_MANIFEST_SIZE);
    assert_eq!(
        ResolverOptions::default().max_manifest_size,
        Limits::default().max_manifest_size
    );
}

#[tokio::test]
async fn one_limits_value_bounds_resolve_fetch_and_the_children_handler() {
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":2}},"layers":[],"annotations":{{"p":"{}"}}}}"#,
        "0".repeat(64),
        "x".repeat(2000)
    )
    .into_bytes();
    let limits = Limits::DEFAULT.with_max_manifest_size(1024);
    let srv = manifest_server(body.clone(), None, None);
    let host = srv.host();
    let opts = fault_options(&host).with_limits(&limits);
    assert_eq!(opts.max_manifest_size, 1024);

    let err = DockerResolver::new(opts.clone())
        .resolve(&format!("{host}/repo:v1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    let d = desc(&body, MediaType::ImageManifest);
    let f = fault_fetcher(opts, &host).await;
    let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
    assert!(err.to_string().contains("exceeds"), "{err}");

    // The same manifest in a store: the children handler with the same limits refuses it,
    // with the default ones reads it.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::open(dir.path()).unwrap());
    dist_content::write_blob(&*store, "m", &d, &body[..])
        .await
        .unwrap();
    let err = children(store.clone())
        .with_limits(limits)
        .handle(&d)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), dist_images::ErrorKind::InvalidArgument, "{err}");
    assert_eq!(children(store).handle(&d).await.unwrap().len(), 1);
}
