//! `hosts.toml` parsed as TOML, with the examples of containerd's `docs/hosts.md` as test
//! vectors, and read once per `HostsConfig`, never per call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use dist_remotes::{Capabilities, ErrorKind, HostsConfig, HostsFile, RegistryHost, Scheme};

const BASE: &str = "/etc/containerd/certs.d/docker.io";

/// Parses `text` as `/etc/containerd/certs.d/docker.io/hosts.toml` for `docker.io`.
fn endpoints(text: &str) -> Vec<RegistryHost> {
    let file = HostsFile::parse(text, &Path::new(BASE).join("hosts.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    HostsConfig::new()
        .with_hosts_file("docker.io", file)
        .hosts("docker.io")
        .unwrap()
}

fn names(hosts: &[RegistryHost]) -> Vec<String> {
    hosts
        .iter()
        .map(|h| {
            let s = if h.scheme == Scheme::Http {
                "http"
            } else {
                "https"
            };
            format!("{s}://{}{}", h.host, h.path)
        })
        .collect()
}

const PULL_RESOLVE: Capabilities = Capabilities::ALL;

#[test]
fn containerd_simple_default_host_config_for_docker() {
    let h = endpoints(
        r#"
server = "https://docker.io"

[host."https://registry-1.docker.io"]
  capabilities = ["pull", "resolve"]
"#,
    );
    assert_eq!(
        names(&h),
        ["https://registry-1.docker.io/v2", "https://docker.io/v2"]
    );
    assert_eq!(h[0].capabilities, PULL_RESOLVE);
    assert_eq!(h[1].capabilities, Capabilities::ALL);
}

#[test]
fn containerd_local_mirror_for_docker_with_trailing_comments_and_a_relative_ca() {
    let h = endpoints(
        r#"
server = "https://registry-1.docker.io"    # Exclude this to not use upstream

[host."https://public-mirror.example.com"]
  capabilities = ["pull"]                  # Requires less trust, won't resolve tag to digest from this host
[host."https://docker-mirror.internal"]
  capabilities = ["pull", "resolve"]
  ca = "docker-mirror.crt"                 # Or absolute path /etc/containerd/certs.d/docker.io/docker-mirror.crt
"#,
    );
    assert_eq!(
        names(&h),
        [
            "https://public-mirror.example.com/v2",
            "https://docker-mirror.internal/v2",
            "https://registry-1.docker.io/v2"
        ]
    );
    assert_eq!(h[0].capabilities, Capabilities::PULL);
    assert_eq!(h[1].capabilities, PULL_RESOLVE);
    assert_eq!(
        h[1].tls.ca_files,
        [PathBuf::from(BASE).join("docker-mirror.crt")]
    );
    assert!(h[0].tls.ca_files.is_empty());
}

#[test]
fn containerd_default_mirror_for_all_registries_and_mirror_as_server() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "_default",
        r#"
[host."https://registry.example.com"]
  capabilities = ["pull", "resolve"]
"#,
    );
    let cfg = HostsConfig::new().with_config_dir(dir.path());
    let h = cfg.hosts("quay.io").unwrap();
    assert_eq!(
        names(&h),
        ["https://registry.example.com/v2", "https://quay.io/v2"]
    );
    assert_eq!(h[0].capabilities, PULL_RESOLVE);

    // Only the mirror: it is the server.
    let h = endpoints(r#"server = "https://registry.example.com""#);
    assert_eq!(names(&h), ["https://registry.example.com/v2"]);
    assert_eq!(h[0].capabilities, Capabilities::ALL);
}

#[test]
fn containerd_bypass_tls_verification_example() {
    let h = endpoints(
        r#"
server = "https://registry-1.docker.io"

[host."http://192.168.31.250:5000"]
  capabilities = ["pull", "resolve", "push"]
  skip_verify = true
"#,
    );
    assert_eq!(
        names(&h),
        [
            "http://192.168.31.250:5000/v2",
            "https://registry-1.docker.io/v2"
        ]
    );
    assert_eq!(
        h[0].capabilities, PULL_RESOLVE,
        "push is accepted, not used"
    );
    assert!(h[0].tls.skip_verify);
    assert!(!h[1].tls.skip_verify);
}

#[test]
fn containerd_host_field_details_example() {
    let h = endpoints(
        r#"
[host."https://mirror.registry"]
  capabilities = ["pull"]
  ca = "/etc/certs/mirror.pem"
  skip_verify = false
  [host."https://mirror.registry".header]
    x-custom-2 = ["value1", "value2"]

[host."https://mirror-bak.registry/us"]
  capabilities = ["pull"]
  skip_verify = true

[host."http://mirror.registry"]
  capabilities = ["pull"]

[host."https://test-1.registry"]
  capabilities = ["pull", "resolve", "push"]
  ca = ["/etc/certs/test-1-ca.pem", "/etc/certs/special.pem"]
  client = [["/etc/certs/client.cert", "/etc/certs/client.key"],["/etc/certs/client.pem", ""]]

[host."https://test-2.registry"]
  client = "/etc/certs/client.pem"

[host."https://test-3.registry"]
  client = ["/etc/certs/client-1.pem", "/etc/certs/client-2.pem"]

[host."https://non-compliant-mirror.registry/v2/upstream"]
  capabilities = ["pull"]
  override_path = true
"#,
    );
    assert_eq!(
        names(&h),
        [
            "https://mirror.registry/v2",
            "https://mirror-bak.registry/us/v2",
            "http://mirror.registry/v2",
            "https://test-1.registry/v2",
            "https://test-2.registry/v2",
            "https://test-3.registry/v2",
            "https://non-compliant-mirror.registry/v2/upstream",
            "https://registry-1.docker.io/v2",
        ]
    );
    assert_eq!(h[0].tls.ca_files, [PathBuf::from("/etc/certs/mirror.pem")]);
    assert!(!h[0].tls.skip_verify);
    assert!(h[1].tls.skip_verify);
    assert_eq!(
        h[3].tls.ca_files,
        [
            PathBuf::from("/etc/certs/test-1-ca.pem"),
            PathBuf::from("/etc/certs/special.pem")
        ]
    );
    assert_eq!(h[3].capabilities, PULL_RESOLVE);
    // Deliberately stricter than containerd: a mirror must be granted `resolve`.
    assert_eq!(h[4].capabilities, Capabilities::PULL);
}

#[test]
fn root_level_fields_apply_to_the_server() {
    let h = endpoints(
        r#"
server = "https://docker.io"
capabilities = ["pull", "resolve", "push"]
ca = ["/etc/certs/test-1-ca.pem"]
skip_verify = false
dial_timeout = "1s"
[header]
  x-custom-1 = "custom header"
"#,
    );
    assert_eq!(names(&h), ["https://docker.io/v2"]);
    assert_eq!(
        h[0].tls.ca_files,
        [PathBuf::from("/etc/certs/test-1-ca.pem")]
    );
    // Without `server`, the settings apply to the registry's own endpoint.
    let h = endpoints(
        r#"
skip_verify = true
ca = "ca.pem"
"#,
    );
    assert_eq!(names(&h), ["https://registry-1.docker.io/v2"]);
    assert!(h[0].tls.skip_verify);
    assert_eq!(h[0].tls.ca_files, [Path::new(BASE).join("ca.pem")]);
}

#[test]
fn any_toml_spelling_works_and_mirror_order_is_file_order() {
    let h = endpoints(
        r#"
# Inline tables (dotted keys) come before any table header.
host."https://z-inline.example" = { capabilities = ["pull", "resolve"], skip_verify = true }
host."https://y-inline.example".capabilities = ["pull"]

[ host."https://m-spaced.example" ]   # a comment after a header, spaces in brackets
  capabilities = [ "pull" ]

[host.'https://a-literal.example:5000/prefix/'] # single-quoted key
  capabilities = ["pull"]

[host."https://b-last.example"]
"#,
    );
    assert_eq!(
        names(&h),
        [
            "https://z-inline.example/v2",
            "https://y-inline.example/v2",
            "https://m-spaced.example/v2",
            "https://a-literal.example:5000/prefix/v2",
            "https://b-last.example/v2",
            "https://registry-1.docker.io/v2",
        ]
    );
    assert!(h[0].tls.skip_verify);
    assert_eq!(h[0].capabilities, PULL_RESOLVE);

    // The `[host]` table form with quoted keys inside it.
    let h = endpoints(
        r#"
[host]
"https://q.example" = { capabilities = ["pull"] }
"https://p.example" = { capabilities = ["pull"] }
[host."https://o.example"]
"#,
    );
    assert_eq!(
        names(&h)[..3],
        [
            "https://q.example/v2",
            "https://p.example/v2",
            "https://o.example/v2"
        ]
    );
}

#[test]
fn malformed_files_are_config_errors_naming_file_and_line() {
    for (text, needle) in [
        ("server = [", "line 1"),
        ("\n\n[host.\"https://a\"\n", "line 3"),
        ("[host.\"ftp://a\"]", "not an http or https URL"),
        (
            "[host.\"https://a\"]\ncapabilities = [\"fly\"]",
            "unknown capability",
        ),
        ("[host.\"https://a\"]\ncapabilities = \"pull\"", "line 2"),
        ("server = \"https://\"", "\"https://\""),
        ("[host.\"https://a\"]\n[host.\"https://a\"]", "line 2"),
    ] {
        let err = HostsFile::parse(text, Path::new("/x/hosts.toml")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{text}: {err}");
        let msg = err.to_string();
        assert!(msg.contains("/x/hosts.toml"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.contains(needle), "{msg} lacks {needle}");
    }
    // A huge bad value is quoted elided.
    let huge = format!(
        "[host.\"https://a\"]\ncapabilities = [\"{}\"]",
        "a".repeat(100_000)
    );
    let msg = HostsFile::parse(&huge, Path::new("/x/hosts.toml"))
        .unwrap_err()
        .to_string();
    assert!(msg.len() < 600, "{}", &msg[..600.min(msg.len())]);
    assert!(
        msg.contains("(100000 bytes)"),
        "{}",
        &msg[..600.min(msg.len())]
    );
}

fn write(dir: &Path, namespace: &str, text: &str) -> PathBuf {
    let d = dir.join(namespace);
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join("hosts.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn files_are_read_once_when_the_config_is_built_never_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "r.example",
        "[host.\"https://mirror.example\"]\nca = \"absent.pem\"\n",
    );
    let cfg = HostsConfig::new().with_config_dir(dir.path());
    std::fs::remove_file(&path).unwrap();
    write(
        dir.path(),
        "other.example",
        "[host.\"https://new.example\"]\n",
    );
    let clone = cfg.clone();
    for c in [&cfg, &clone] {
        let h = c.hosts("r.example").unwrap();
        assert_eq!(
            names(&h),
            ["https://mirror.example/v2", "https://r.example/v2"]
        );
        // The CA is a path, read (by the HTTP client) only when it is used.
        assert_eq!(h[0].tls.ca_files, [dir.path().join("r.example/absent.pem")]);
        assert_eq!(names(&c.hosts("other.example").unwrap()).len(), 1);
    }
}

#[test]
fn namespaces_follow_containerds_order_and_one_broken_file_spares_other_hosts() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "reg.example_5000_",
        "[host.\"https://first.example\"]\n",
    );
    write(
        dir.path(),
        "reg.example:5000",
        "[host.\"https://second.example\"]\n",
    );
    write(
        dir.path(),
        "_default",
        "[host.\"https://default.example\"]\n",
    );
    let broken = write(dir.path(), "broken.example", "server = [");
    let cfg = HostsConfig::new()
        .with_config_dir(dir.path())
        .with_plain_http("plain.example");
    assert_eq!(
        names(&cfg.hosts("reg.example:5000").unwrap())[0],
        "https://first.example/v2"
    );
    let h = cfg.hosts("plain.example").unwrap();
    assert_eq!(
        names(&h),
        ["https://default.example/v2", "http://plain.example/v2"]
    );
    let err = cfg.hosts("broken.example").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(
        err.to_string().contains(&broken.display().to_string()),
        "{err}"
    );
    // A missing directory is no configuration.
    let none = HostsConfig::new().with_config_dir(dir.path().join("absent"));
    assert_eq!(
        names(&none.hosts("x.example").unwrap()),
        ["https://x.example/v2"]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_async_loader_reads_the_same_files_off_the_runtime_thread() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "r.example",
        "[host.\"https://mirror.example\"]\n",
    );
    let sync = HostsConfig::new().with_config_dir(dir.path());
    let not_sync = HostsConfig::new()
        .with_plain_http("p.example")
        .with_config_dir_async(dir.path())
        .await;
    assert_eq!(
        sync.hosts("r.example").unwrap(),
        not_sync.hosts("r.example").unwrap()
    );
    assert_eq!(
        names(&not_sync.hosts("p.example").unwrap()),
        ["http://p.example/v2"],
        "earlier settings are kept"
    );
}
