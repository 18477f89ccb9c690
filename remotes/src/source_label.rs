//! [`source_label_handler`]: records on each fetched blob where it came from, as the
//! `containerd.io/distribution.source.<host>=<repo>[,<repo>…]` label containerd writes, so
//! that a later push to the same registry can mount the blob instead of uploading it.

use std::sync::Arc;

use async_trait::async_trait;
use dist_content::{Elided, LabelMerge, Manager};
use dist_images::Handler;
use dist_reference::Spec;
use oci_spec::image::Descriptor;

use crate::{DISTRIBUTION_SOURCE_PREFIX, Error, Result};

/// The longest label (key and value together) written, as containerd's label validation
/// allows; a longer list of sources is left as it was rather than refused.
pub const MAX_SOURCE_LABEL_LEN: usize = 4096;

/// The label key for blobs from `host` (`host[:port]` as in a reference): the host name
/// without its port, as containerd keys it (`url.Hostname()`), so
/// `localhost:5000` gives `containerd.io/distribution.source.localhost`.
pub fn source_label_key(host: &str) -> String {
    format!("{DISTRIBUTION_SOURCE_PREFIX}{}", host_name(host))
}

/// `host` without a port; a bracketed IPv6 address without its brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(addr, _)| addr);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// The label value with `repo` added to the comma-separated list `existing`: sorted and
/// without duplicates or empty entries, as containerd's `appendDistributionSourceLabel`.
pub fn append_source(existing: Option<&str>, repo: &str) -> String {
    let mut repos: Vec<&str> = existing
        .unwrap_or_default()
        .split(',')
        .chain(std::iter::once(repo))
        .filter(|r| !r.is_empty())
        .collect();
    repos.sort_unstable();
    repos.dedup();
    repos.join(",")
}

/// The handler returned by [`source_label_handler`].
pub struct SourceLabelHandler {
    manager: Arc<dyn Manager>,
    key: String,
    repo: String,
}

impl std::fmt::Debug for SourceLabelHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceLabelHandler")
            .field("key", &self.key)
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

/// A handler that adds the repository of `name` (`host/repo[:tag][@digest]`, as a
/// resolver returns it) to each handled blob's `containerd.io/distribution.source.<host>`
/// label in `manager`, and returns no children. Put it after
/// [`fetch_handler`](crate::fetch_handler) in a [`Handlers`](dist_images::Handlers) chain,
/// so the blob is stored when it runs.
///
/// Other labels are kept. The list is merged through [`Manager::merge_label`], which a
/// [`LocalStore`](dist_content::LocalStore) runs under its label lock, so pulls in several
/// processes that label one blob at once each keep their repository.
pub fn source_label_handler(manager: Arc<dyn Manager>, name: &str) -> Result<SourceLabelHandler> {
    let spec = Spec::parse(name).map_err(Error::from_reference(name))?;
    let repo = spec.repository();
    if repo.is_empty() {
        return Err(Error::invalid_reference(name, "no repository", None));
    }
    Ok(SourceLabelHandler {
        manager,
        key: source_label_key(spec.hostname()),
        repo: repo.to_string(),
    })
}

impl SourceLabelHandler {
    /// The label key this handler writes.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Adds the repository to `desc`'s label; `Ok` when it was there already. A list that
    /// would grow past [`MAX_SOURCE_LABEL_LEN`] is left as it is.
    pub async fn record(&self, desc: &Descriptor) -> Result<()> {
        let (repo, key_len) = (self.repo.clone(), self.key.len());
        let merge: LabelMerge = Arc::new(move |current| {
            let value = append_source(current, &repo);
            let unchanged = current == Some(value.as_str());
            let too_long = key_len.saturating_add(value.len()) > MAX_SOURCE_LABEL_LEN;
            (!unchanged && !too_long).then_some(value)
        });
        let info = self
            .manager
            .merge_label(desc.digest(), &self.key, merge)
            .await?;
        let listed = info.labels.get(&self.key).map(String::as_str);
        if !listed.is_some_and(|v| v.split(',').any(|r| r == self.repo)) {
            tracing::warn!(
                digest = %desc.digest(),
                key = %Elided(&self.key),
                "distribution source label too long: not appended"
            );
        }
        Ok(())
    }
}

#[async_trait]
impl Handler for SourceLabelHandler {
    async fn handle(&self, desc: &Descriptor) -> dist_images::Result<Vec<Descriptor>> {
        self.record(desc)
            .await
            .map_err(|e| dist_images::Error::other(e.kind(), e))?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_drop_the_port_as_containerd_does() {
        let p = DISTRIBUTION_SOURCE_PREFIX;
        assert_eq!(source_label_key("docker.io"), format!("{p}docker.io"));
        assert_eq!(source_label_key("localhost:5000"), format!("{p}localhost"));
        assert_eq!(source_label_key("127.0.0.1:41234"), format!("{p}127.0.0.1"));
        assert_eq!(source_label_key("[::1]:5000"), format!("{p}::1"));
        assert_eq!(source_label_key("[fe80::1]"), format!("{p}fe80::1"));
    }

    #[test]
    fn sources_are_sorted_without_duplicates() {
        assert_eq!(append_source(None, "library/redis"), "library/redis");
        assert_eq!(append_source(Some(""), "a"), "a");
        assert_eq!(append_source(Some("b,d"), "c"), "b,c,d");
        assert_eq!(append_source(Some("b,c,d"), "c"), "b,c,d");
        assert_eq!(append_source(Some("z,a,a"), "m"), "a,m,z");
    }
}
