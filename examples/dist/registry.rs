//! Registry access for the commands: a [`DockerResolver`] configured from the global flags.

use std::sync::Arc;

use dist::reference::{Spec, normalize};
use dist::remotes::{
    DockerConfig, DockerResolver, HostsConfig, LayoutLocator, LayoutResolver, Resolver,
    ResolverOptions,
};

use crate::CmdResult;
use crate::cli::Global;

/// A reference as the user typed it, normalised (`redis` -> `docker.io/library/redis:latest`);
/// an OCI layout locator (`oci:/dir:tag`) stays as it is.
pub fn normalize_ref(reference: &str) -> CmdResult<String> {
    if LayoutLocator::is_locator(reference) {
        return Ok(reference.to_owned());
    }
    Ok(normalize(reference)
        .map_err(|e| format!("invalid reference {reference:?}: {e}"))?
        .to_string())
}

/// A resolver for `reference` honouring `--plain-http`, `--hosts-dir`, `--timeout` and
/// Docker's `config.json` credentials.
pub async fn resolver(global: &Global, reference: &str) -> CmdResult<DockerResolver> {
    Ok(DockerResolver::new(options(global, reference).await?))
}

/// The options [`resolver`] uses, for commands that add their own (push's upload options).
pub async fn options(global: &Global, reference: &str) -> CmdResult<ResolverOptions> {
    let spec =
        Spec::parse(reference).map_err(|e| format!("invalid reference {reference:?}: {e}"))?;
    let mut hosts = HostsConfig::new();
    if let Some(dir) = &global.hosts_dir {
        hosts = hosts.with_config_dir_async(dir).await;
    }
    if global.plain_http {
        hosts = hosts.with_plain_http(spec.hostname());
    }
    let mut options = ResolverOptions::default()
        .with_hosts(hosts)
        .with_limits(&crate::fetch::LIMITS)
        .with_credentials(Arc::new(DockerConfig::load_async().await?));
    if let Some(timeout) = global.timeout {
        // Headers and body stalls wait `timeout`; connecting never waits longer.
        let connect = options.connect_timeout.min(timeout);
        options = options
            .with_request_timeout(timeout)
            .with_timeouts(connect, timeout);
    }
    Ok(options)
}

/// The resolver the locator picks: an OCI layout for `oci:<dir>[:tag]`, else a registry.
pub async fn any_resolver(global: &Global, reference: &str) -> CmdResult<Box<dyn Resolver>> {
    if LayoutLocator::is_locator(reference) {
        return Ok(Box::new(LayoutResolver::new()));
    }
    Ok(Box::new(resolver(global, reference).await?))
}

/// `name` when it names a registry repository, `None` for a layout locator (`oci:…`),
/// which has no registry to record as a blob's source.
pub fn registry_name(name: &str) -> Option<String> {
    (!LayoutLocator::is_locator(name)).then(|| name.to_owned())
}
