//! HTTPS registries: extra CA files (also from `hosts.toml`) and skip-verify.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use dist_remotes::{
    DockerResolver, ErrorKind, HostsConfig, RegistryHost, Resolver, ResolverOptions, RetryPolicy,
    TlsOptions,
};
use dist_test_support::{AuthMode, OciLayout, Platform, Push, Registry};

fn tls_registry() -> Registry {
    let reg = Registry::start_tls(AuthMode::None).unwrap();
    let mut layout = OciLayout::new().unwrap();
    layout
        .add_image(
            Some("v1"),
            &Platform::new("linux", "amd64"),
            &[("a", b"tls")],
        )
        .unwrap();
    reg.push(layout.path(), "v1", "tls/img:v1", Push::oci())
        .unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    reg
}

async fn pull(opts: ResolverOptions, reg: &Registry) -> dist_remotes::Result<usize> {
    let r = DockerResolver::new(opts.with_retry(RetryPolicy::none()));
    let (name, desc) = r.resolve(&format!("{}/tls/img:v1", reg.host())).await?;
    let f = r.fetcher(&name).await?;
    Ok(common::fetch_all(f.as_ref(), &desc).await?.len())
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_without_falling_back_to_plain_http() {
    let reg = tls_registry();
    let err = pull(ResolverOptions::default(), &reg).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(err.to_string().contains("https://"), "{err}");
}

#[tokio::test]
async fn a_ca_file_named_in_hosts_toml_is_trusted() {
    let reg = tls_registry();
    let certs_d = tempfile::tempdir().unwrap();
    let dir = certs_d.path().join(reg.host());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(reg.ca_cert().unwrap(), dir.join("ca.pem")).unwrap();
    std::fs::write(
        dir.join("hosts.toml"),
        format!("server = \"https://{}\"\nca = \"ca.pem\"\n", reg.host()),
    )
    .unwrap();
    let opts =
        ResolverOptions::default().with_hosts(HostsConfig::new().with_config_dir(certs_d.path()));
    assert!(pull(opts, &reg).await.unwrap() > 0);
}

#[tokio::test]
async fn skip_verify_accepts_any_certificate() {
    let reg = tls_registry();
    let mut tls = TlsOptions::default();
    tls.skip_verify = true;
    let hosts = HostsConfig::new().with_hosts(
        reg.host(),
        vec![RegistryHost::new(reg.host()).with_tls(tls)],
    );
    let opts = ResolverOptions::default().with_hosts(hosts);
    assert!(pull(opts, &reg).await.unwrap() > 0);
}

#[tokio::test]
async fn a_ca_file_is_read_once_per_resolver_not_per_request() {
    let reg = tls_registry();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::copy(reg.ca_cert().unwrap(), &ca).unwrap();
    let tls = TlsOptions::default().with_ca_file(&ca);
    let hosts = HostsConfig::new().with_hosts(
        reg.host(),
        vec![RegistryHost::new(reg.host()).with_tls(tls)],
    );
    let opts = ResolverOptions::default()
        .with_hosts(hosts)
        .with_retry(RetryPolicy::none());
    let r = DockerResolver::new(opts.clone());
    let reference = format!("{}/tls/img:v1", reg.host());
    r.resolve(&reference).await.unwrap();

    // Gone from disk: the resolver that read it keeps working...
    std::fs::remove_file(&ca).unwrap();
    let (name, desc) = r.resolve(&reference).await.unwrap();
    let f = r.fetcher(&name).await.unwrap();
    assert!(
        !common::fetch_all(f.as_ref(), &desc)
            .await
            .unwrap()
            .is_empty()
    );

    // ...and a new resolver reads it afresh, and says which file is missing.
    let err = DockerResolver::new(opts)
        .resolve(&reference)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(err.to_string().contains("ca.pem"), "{err}");
}

#[tokio::test]
async fn a_loopback_registry_without_tls_is_reached_by_falling_back_to_plain_http() {
    let reg = Registry::start(AuthMode::None).unwrap();
    let mut layout = OciLayout::new().unwrap();
    layout
        .add_image(
            Some("v1"),
            &Platform::new("linux", "amd64"),
            &[("a", b"plain")],
        )
        .unwrap();
    reg.push(layout.path(), "v1", "tls/img:v1", Push::oci())
        .unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    // No `with_plain_http`: HTTPS is tried first, fails without a certificate being refused,
    // and the loopback host falls back.
    assert!(pull(ResolverOptions::default(), &reg).await.unwrap() > 0);
}
