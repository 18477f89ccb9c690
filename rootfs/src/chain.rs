//! Layer identities: the DiffID of one uncompressed layer and the ChainID of a stack.

use std::fmt;
use std::str::FromStr;

use dist_content::Digester;
use oci_spec::image::Digest;

use crate::{Error, Result};

/// The SHA-256 of a layer's uncompressed tar stream, as listed in the image config's
/// `rootfs.diff_ids`.
pub type DiffId = Digest;

/// Names a stack of layers: the bottom layer's ChainID is its DiffID, and each further
/// layer's is `sha256(parent_chain_id + " " + diff_id)` (OCI image spec, "Layer ChainID").
/// Snapshots are keyed by ChainID so a shared base stack is unpacked once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChainId(Digest);

impl ChainId {
    /// The ChainID of `diff_id` on top of `parent` (or at the bottom when `None`).
    pub fn new(parent: Option<&ChainId>, diff_id: &DiffId) -> ChainId {
        match parent {
            None => ChainId(diff_id.clone()),
            Some(p) => {
                let mut h = Digester::sha256();
                h.update(p.0.as_ref().as_bytes());
                h.update(b" ");
                h.update(diff_id.as_ref().as_bytes());
                ChainId(h.finish())
            }
        }
    }

    /// The ChainID as a digest.
    pub fn digest(&self) -> &Digest {
        &self.0
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl AsRef<str> for ChainId {
    fn as_ref(&self) -> &str {
        self.0.as_ref()
    }
}

impl From<ChainId> for Digest {
    fn from(c: ChainId) -> Digest {
        c.0
    }
}

impl FromStr for ChainId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Digest::from_str(s)
            .map(ChainId)
            .map_err(|source| Error::InvalidChainId {
                input: dist_content::elide(s),
                source,
            })
    }
}

/// The ChainID of every prefix of `diff_ids`: element `i` names layers `0..=i`.
pub fn chain_ids(diff_ids: &[DiffId]) -> Vec<ChainId> {
    let mut out: Vec<ChainId> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = ChainId::new(out.last(), d);
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::from_str(s).unwrap()
    }

    /// The two DiffIDs of the image spec's example configuration (config.md), with the
    /// ChainID given by the spec's formula.
    #[test]
    fn chain_ids_match_the_image_spec_example() {
        let diffs = [
            d("sha256:c6f988f4874bb0add23a778f753c65efe992244e148a1d2ec2a8b664fb66bbd1"),
            d("sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"),
        ];
        let chain = chain_ids(&diffs);
        assert_eq!(chain[0].digest(), &diffs[0], "bottom ChainID is its DiffID");
        assert_eq!(
            chain[1].to_string(),
            "sha256:c3191d32a37d7159b2e30830937d2e30268ad6c375a773a8994911a3aba9b93f"
        );
    }

    #[test]
    fn chain_id_of_three_layers_hashes_the_parent_chain_not_the_diff() {
        let a = d(&format!("sha256:{}", "a".repeat(64)));
        let b = d(&format!("sha256:{}", "b".repeat(64)));
        let c = d(&format!("sha256:{}", "c".repeat(64)));
        let chain = chain_ids(&[a.clone(), b.clone(), c.clone()]);
        let ab = ChainId::new(Some(&ChainId(a)), &b);
        assert_eq!(chain[1], ab);
        assert_eq!(chain[2], ChainId::new(Some(&ab), &c));
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn a_bad_chain_id_keeps_the_digest_parse_error_as_source() {
        let err = ChainId::from_str("not a digest").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        let source = std::error::Error::source(&err).expect("a source");
        assert!(source.is::<oci_spec::OciSpecError>(), "{source:?}");
    }
}
