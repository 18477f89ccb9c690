//! Cross-repository mounts: the candidates a descriptor names, and the mount request.

use oci_spec::image::{Descriptor, Digest};
use reqwest::{Method, StatusCode};

use super::client::Request;
use super::push::{DockerPusher, Opened, finish, opened};
use crate::hosts::DOCKER_HUB;
use crate::{DISTRIBUTION_SOURCE_PREFIX, ErrorKind, Result};

/// What a mount request did.
pub(super) enum Mount {
    /// The registry linked the blob from the source repository: nothing to upload.
    Mounted,
    /// The registry opened an upload session instead (the source lacks the blob, or the
    /// registry does not mount).
    Opened(Opened),
    /// Neither (refused, unknown source): upload as if no mount had been tried.
    Refused,
}

/// Most mount sources tried for one blob: a label naming more costs requests, not bytes.
const MAX_MOUNT_SOURCES: usize = 8;

/// The repositories `desc`'s `containerd.io/distribution.source.<registry>` annotation
/// names, in order, without duplicates or `own` (a blob is not mounted from where it goes).
///
/// Both keys are read: containerd's, the host without its port (what
/// [`source_label_handler`](crate::source_label_handler) writes), and the host with it.
pub(crate) fn mount_sources(desc: &Descriptor, registry: &str, own: &str) -> Vec<String> {
    let Some(annotations) = desc.annotations().as_ref() else {
        return Vec::new();
    };
    let exact = format!("{DISTRIBUTION_SOURCE_PREFIX}{registry}");
    let containerd = crate::source_label_key(registry);
    let mut keys = vec![exact];
    if !keys.contains(&containerd) {
        keys.push(containerd);
    }
    let values = keys.iter().filter_map(|k| annotations.get(k));
    let mut out: Vec<String> = Vec::new();
    for repo in values
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        // Docker Hub's official images live under `library/`, as resolved names do.
        let repo = if registry == DOCKER_HUB && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo.to_string()
        };
        if repo != own && !out.contains(&repo) && out.len() < MAX_MOUNT_SOURCES {
            out.push(repo);
        }
    }
    out
}

impl DockerPusher {
    /// Asks the registry to mount `digest` from repository `from` of the same registry, with
    /// `pull` scope on `from` in the token request.
    pub(super) async fn mount(&self, digest: &Digest, from: &str) -> Result<Mount> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("mount", digest.as_ref())
            .append_pair("from", from)
            .finish();
        let mut post = Request::new(Method::POST, format!("blobs/uploads/?{query}"));
        post.push = true;
        post.mount_from = Some(from.to_string());
        let what = self.what(digest.as_ref());
        let (host, resp) = match self.send(post).await {
            Ok(answer) => answer,
            // No pull on `from` for these credentials: upload instead.
            Err(e) if e.kind() == ErrorKind::Unauthorized => {
                tracing::debug!(digest = %digest, from, error = %e, "mount refused");
                return Ok(Mount::Refused);
            }
            Err(e) => return Err(e),
        };
        match resp.status() {
            StatusCode::CREATED => {
                finish(&host, &what, resp, digest).await?;
                tracing::debug!(digest = %digest, from, "mounted");
                Ok(Mount::Mounted)
            }
            StatusCode::ACCEPTED => Ok(Mount::Opened(opened(&host, &what, &resp)?)),
            s => {
                tracing::debug!(digest = %digest, from, status = %s, "mount not possible");
                Ok(Mount::Refused)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn digest() -> Digest {
        Digest::from_str("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn annotated(key: &str, value: &str) -> Descriptor {
        let mut d = Descriptor::new(oci_spec::image::MediaType::ImageLayerGzip, 0, digest());
        d.set_annotations(Some(std::collections::HashMap::from([(
            key.to_string(),
            value.to_string(),
        )])));
        d
    }

    #[test]
    fn mount_sources_are_this_registrys_repositories_in_order_without_the_own_one() {
        let d = annotated(
            "containerd.io/distribution.source.reg:5000",
            " team/a ,team/b,, team/a,me/own",
        );
        assert_eq!(
            mount_sources(&d, "reg:5000", "me/own"),
            vec!["team/a".to_string(), "team/b".to_string()]
        );
        assert!(mount_sources(&d, "other:5000", "me/own").is_empty());
        // containerd's key drops the port.
        let d = annotated("containerd.io/distribution.source.reg", "team/c");
        assert_eq!(
            mount_sources(&d, "reg:5000", "me/own"),
            vec!["team/c".to_string()]
        );
        let none = Descriptor::new(oci_spec::image::MediaType::ImageLayerGzip, 0, digest());
        assert!(mount_sources(&none, "reg:5000", "me/own").is_empty());
    }

    #[test]
    fn docker_hub_sources_get_the_library_prefix_and_many_sources_are_bounded() {
        let d = annotated(
            "containerd.io/distribution.source.docker.io",
            "redis,me/app",
        );
        assert_eq!(
            mount_sources(&d, "docker.io", "library/redis"),
            vec!["me/app".to_string()]
        );
        let many: Vec<String> = (0..50).map(|i| format!("r/{i}")).collect();
        let d = annotated("containerd.io/distribution.source.reg", &many.join(","));
        assert_eq!(mount_sources(&d, "reg", "x").len(), MAX_MOUNT_SOURCES);
    }
}
