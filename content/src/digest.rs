//! Digest helpers: turning a finished hash into an [`oci_spec::image::Digest`] and checking
//! bytes against a digest of any algorithm `sha2` implements.

use oci_spec::image::{Digest, DigestAlgorithm};
use sha2::{Digest as _, Sha256, Sha384, Sha512};

use crate::{Error, Result};

/// The digest of everything fed to `hasher`.
pub(crate) fn sha256_digest(hasher: Sha256) -> Digest {
    from_parts("sha256", &hex::encode(hasher.finalize()))
}

fn from_parts(alg: &str, hex: &str) -> Digest {
    match Digest::try_from(format!("{alg}:{hex}")) {
        Ok(d) => d,
        // Lower-case hex of the algorithm's own output length always parses.
        Err(_) => unreachable!("hex output of {alg} is a valid digest"),
    }
}

/// A running hash for one of the algorithms a blob may be named by.
#[derive(Clone)]
pub(crate) enum Hasher {
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    /// A hasher for `digest`'s algorithm; `InvalidArgument` for algorithms we cannot verify.
    pub(crate) fn for_digest(digest: &Digest) -> Result<Hasher> {
        match digest.algorithm() {
            DigestAlgorithm::Sha256 => Ok(Hasher::Sha256(Sha256::new())),
            DigestAlgorithm::Sha384 => Ok(Hasher::Sha384(Sha384::new())),
            DigestAlgorithm::Sha512 => Ok(Hasher::Sha512(Sha512::new())),
            _ => Err(Error::unsupported_digest(digest)),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub(crate) fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => from_parts("sha256", &hex::encode(h.finalize())),
            Hasher::Sha384(h) => from_parts("sha384", &hex::encode(h.finalize())),
            Hasher::Sha512(h) => from_parts("sha512", &hex::encode(h.finalize())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_input_is_the_well_known_digest() {
        assert_eq!(
            sha256_digest(Sha256::new()).to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hasher_follows_the_digest_algorithm() {
        let d: Digest = "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e".parse().unwrap();
        let h = Hasher::for_digest(&d).unwrap();
        assert_eq!(h.finish(), d);
    }
}
