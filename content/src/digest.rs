//! Digest algorithms and hashing: the one place dist-rs turns bytes into a [`Digest`].
//!
//! Every crate computes digests through this module, so the algorithms a blob may be named
//! by (sha256, sha384 and sha512, the OCI spec's registered ones) are the same for parsing,
//! verifying, storing and addressing. One hasher serves all three through
//! [`DynDigest`].

use std::fmt;

use ::digest::DynDigest;
use oci_spec::image::{Digest, DigestAlgorithm};

use crate::{Error, Result};

/// A digest algorithm dist-rs can compute and verify.
///
/// `oci_spec`'s [`DigestAlgorithm`] also names algorithms nobody can check (`Other`);
/// converting one to an `Algorithm` is where an unsupported algorithm is refused, with
/// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Algorithm {
    /// SHA-256: what registries and containerd use unless told otherwise.
    #[default]
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// Every supported algorithm, the default first.
    pub const ALL: [Algorithm; 3] = [Algorithm::Sha256, Algorithm::Sha384, Algorithm::Sha512];

    /// The algorithm's name as it appears in a digest (`sha256` in `sha256:<hex>`) and in
    /// the store layout (`blobs/sha256/<hex>`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The length of the algorithm's digests in hex characters.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }

    /// The algorithm `digest` is named by; `InvalidArgument` when it is not one we support.
    pub fn of(digest: &Digest) -> Result<Algorithm> {
        Algorithm::try_from(digest.algorithm()).map_err(|_| Error::unsupported_digest(digest))
    }

    /// `oci_spec`'s name for this algorithm.
    pub fn to_oci(self) -> DigestAlgorithm {
        match self {
            Algorithm::Sha256 => DigestAlgorithm::Sha256,
            Algorithm::Sha384 => DigestAlgorithm::Sha384,
            Algorithm::Sha512 => DigestAlgorithm::Sha512,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<&DigestAlgorithm> for Algorithm {
    type Error = Error;

    /// Fails with `InvalidArgument` for algorithms other than sha256, sha384 and sha512.
    fn try_from(alg: &DigestAlgorithm) -> Result<Algorithm> {
        match alg {
            DigestAlgorithm::Sha256 => Ok(Algorithm::Sha256),
            DigestAlgorithm::Sha384 => Ok(Algorithm::Sha384),
            DigestAlgorithm::Sha512 => Ok(Algorithm::Sha512),
            other => Err(Error::InvalidArgument(format!(
                "unsupported digest algorithm {} (sha256, sha384 and sha512 are)",
                crate::Elided(other.as_ref())
            ))),
        }
    }
}

impl From<Algorithm> for DigestAlgorithm {
    fn from(alg: Algorithm) -> DigestAlgorithm {
        alg.to_oci()
    }
}

/// A fresh hasher for `alg`, as a [`DynDigest`] trait object (for callers that want the
/// raw output bytes; [`Digester`] gives a [`Digest`]).
pub fn hasher_for(alg: Algorithm) -> Box<dyn DynDigest + Send + Sync> {
    new_state(alg)
}

/// A [`DynDigest`] that can be cloned into another thread (`DynDigest::box_clone` drops
/// `Send`).
trait State: DynDigest + Send + Sync {
    fn clone_state(&self) -> Box<dyn State>;
}

impl<T: DynDigest + Clone + Send + Sync + 'static> State for T {
    fn clone_state(&self) -> Box<dyn State> {
        Box::new(self.clone())
    }
}

fn new_state(alg: Algorithm) -> Box<dyn State> {
    match alg {
        Algorithm::Sha256 => Box::new(sha2::Sha256::default()),
        Algorithm::Sha384 => Box::new(sha2::Sha384::default()),
        Algorithm::Sha512 => Box::new(sha2::Sha512::default()),
    }
}

/// A running hash that ends in a [`Digest`] of its algorithm.
///
/// It implements [`std::io::Write`], so `std::io::copy(&mut reader, &mut digester)` hashes
/// a whole stream.
pub struct Digester {
    alg: Algorithm,
    state: Box<dyn State>,
}

impl Digester {
    /// A digester for `alg`.
    pub fn new(alg: Algorithm) -> Digester {
        Digester {
            alg,
            state: new_state(alg),
        }
    }

    /// A sha256 digester: the algorithm for content that has no name yet.
    pub fn sha256() -> Digester {
        Digester::new(Algorithm::Sha256)
    }

    /// A digester for the algorithm `digest` is named by, to verify content against it;
    /// `InvalidArgument` for unsupported algorithms.
    pub fn for_digest(digest: &Digest) -> Result<Digester> {
        Ok(Digester::new(Algorithm::of(digest)?))
    }

    /// The algorithm being computed.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Adds `data` to the hash.
    pub fn update(&mut self, data: &[u8]) {
        self.state.update(data);
    }

    /// The digest of everything added so far, without ending the hash.
    pub fn current(&self) -> Digest {
        Digester {
            alg: self.alg,
            state: self.state.clone_state(),
        }
        .finish()
    }

    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        let bytes = (self.state as Box<dyn DynDigest>).finalize();
        from_parts(self.alg, &hex::encode(bytes))
    }
}

impl Clone for Digester {
    fn clone(&self) -> Digester {
        Digester {
            alg: self.alg,
            state: self.state.clone_state(),
        }
    }
}

impl Default for Digester {
    fn default() -> Digester {
        Digester::sha256()
    }
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digester")
            .field("algorithm", &self.alg)
            .finish_non_exhaustive()
    }
}

impl std::io::Write for Digester {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn from_parts(alg: Algorithm, hex: &str) -> Digest {
    match Digest::try_from(format!("{alg}:{hex}")) {
        Ok(d) => d,
        // Lower-case hex of the algorithm's own output length always parses.
        Err(_) => unreachable!("hex output of {alg} is a valid digest"),
    }
}

/// The `alg` digest of `bytes`.
pub fn digest_of(alg: Algorithm, bytes: &[u8]) -> Digest {
    let mut d = Digester::new(alg);
    d.update(bytes);
    d.finish()
}

/// The sha256 digest of `bytes` (`sha256:<hex>`).
pub fn sha256_of(bytes: &[u8]) -> Digest {
    digest_of(Algorithm::Sha256, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The digests of "abc" from FIPS 180-2.
    const ABC: [&str; 3] = [
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "sha384:cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
        "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    ];

    #[test]
    fn sha256_of_empty_input_is_the_well_known_digest() {
        assert_eq!(
            sha256_of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn every_algorithm_gives_the_standard_vectors() {
        for (alg, want) in Algorithm::ALL.into_iter().zip(ABC) {
            let d = digest_of(alg, b"abc");
            assert_eq!(d.to_string(), want);
            assert_eq!(d.digest().len(), alg.hex_len());
            assert_eq!(Algorithm::of(&d).unwrap(), alg);
            let raw = {
                let mut h = hasher_for(alg);
                h.update(b"abc");
                hex::encode((h as Box<dyn DynDigest>).finalize())
            };
            assert_eq!(raw, d.digest());
        }
    }

    #[test]
    fn digester_follows_the_digest_algorithm_and_survives_clones() {
        for want in ABC {
            let d: Digest = want.parse().unwrap();
            let mut h = Digester::for_digest(&d).unwrap();
            h.update(b"a");
            let copy = h.clone();
            h.update(b"bc");
            assert_eq!(h.current(), d);
            assert_eq!(h.finish(), d);
            assert_ne!(copy.finish(), d);
        }
    }

    #[test]
    fn io_write_hashes_a_stream() {
        let mut h = Digester::new(Algorithm::Sha512);
        std::io::copy(&mut &b"abc"[..], &mut h).unwrap();
        assert_eq!(h.finish().to_string(), ABC[2]);
    }

    #[test]
    fn unsupported_algorithms_are_invalid_arguments() {
        let d: Digest = "blake3:0123456789abcdef0123456789abcdef".parse().unwrap();
        let err = Digester::for_digest(&d).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("blake3"), "{err}");
    }
}
