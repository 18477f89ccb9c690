//! Checking a byte stream against its descriptor: size and digest.

use bytes::Bytes;
use futures::StreamExt;
use oci_spec::image::{Digest, DigestAlgorithm};
use sha2::Digest as _;

use crate::{ByteStream, Error, Result};

/// An incremental hash for the algorithms descriptors use.
#[derive(Clone)]
pub(crate) enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A hasher for `digest`'s algorithm; `InvalidArgument`-kind error for others.
    pub(crate) fn for_digest(digest: &Digest) -> Result<Self> {
        match digest.algorithm() {
            DigestAlgorithm::Sha256 => Ok(Hasher::Sha256(sha2::Sha256::new())),
            DigestAlgorithm::Sha512 => Ok(Hasher::Sha512(sha2::Sha512::new())),
            other => Err(Error::InvalidReference {
                reference: digest.to_string(),
                reason: format!("unsupported digest algorithm {other}"),
            }),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest as `<alg>:<hex>`.
    pub(crate) fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }
}

/// Wraps `inner`, which should deliver bytes `offset..size` of the content named by
/// `digest`. Fails as soon as more than that arrives; at the end, fails when less arrived
/// or (when `offset` is 0) when the digest differs.
pub(crate) fn verified(
    inner: ByteStream,
    digest: &Digest,
    size: u64,
    offset: u64,
) -> Result<ByteStream> {
    struct State {
        inner: ByteStream,
        hasher: Option<Hasher>,
        seen: u64,
        done: bool,
    }
    let hasher = if offset == 0 {
        Some(Hasher::for_digest(digest)?)
    } else {
        None
    };
    let what = digest.to_string();
    let expected = digest.to_string();
    let want = size.saturating_sub(offset);
    let state = State {
        inner,
        hasher,
        seen: 0,
        done: false,
    };
    let s = futures::stream::unfold(state, move |mut st| {
        let what = what.clone();
        let expected = expected.clone();
        async move {
            if st.done {
                return None;
            }
            match st.inner.next().await {
                Some(Ok(chunk)) => {
                    st.seen = st.seen.saturating_add(chunk.len() as u64);
                    if st.seen > want {
                        st.done = true;
                        let reason = format!("more than the expected {size} bytes");
                        return Some((Err(Error::mismatch(what, reason)), st));
                    }
                    if let Some(h) = st.hasher.as_mut() {
                        h.update(&chunk);
                    }
                    Some((Ok::<Bytes, Error>(chunk), st))
                }
                Some(Err(e)) => {
                    st.done = true;
                    Some((Err(e), st))
                }
                None => {
                    st.done = true;
                    if st.seen < want {
                        let got = offset.saturating_add(st.seen);
                        let reason = format!("short content: {got} of {size} bytes");
                        return Some((Err(Error::mismatch(what, reason)), st));
                    }
                    match st.hasher.take().map(Hasher::finish) {
                        Some(actual) if actual != expected => {
                            let reason = format!("content has digest {actual}");
                            Some((Err(Error::mismatch(what, reason)), st))
                        }
                        _ => None,
                    }
                }
            }
        }
    });
    Ok(Box::pin(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    const HELLO: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn chunks(parts: &[&'static [u8]]) -> ByteStream {
        let v: Vec<Result<Bytes>> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Box::pin(futures::stream::iter(v))
    }

    async fn run(s: ByteStream) -> Result<Vec<u8>> {
        let v: Vec<Bytes> = s.try_collect().await?;
        Ok(v.concat())
    }

    #[tokio::test]
    async fn matching_content_passes_through() {
        let d: Digest = HELLO.parse().unwrap();
        let out = run(verified(chunks(&[b"he", b"llo"]), &d, 5, 0).unwrap()).await;
        assert_eq!(out.unwrap(), b"hello");
    }

    #[tokio::test]
    async fn wrong_byte_is_a_digest_mismatch() {
        let d: Digest = HELLO.parse().unwrap();
        let err = run(verified(chunks(&[b"hellO"]), &d, 5, 0).unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::FailedPrecondition);
        assert!(err.to_string().contains("digest"), "{err}");
    }

    #[tokio::test]
    async fn short_and_long_content_fail() {
        let d: Digest = HELLO.parse().unwrap();
        let err = run(verified(chunks(&[b"hell"]), &d, 5, 0).unwrap())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("short"), "{err}");
        let err = run(verified(chunks(&[b"hello", b"!"]), &d, 5, 0).unwrap())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }

    #[tokio::test]
    async fn from_an_offset_only_the_size_is_checked() {
        let d: Digest = HELLO.parse().unwrap();
        let out = run(verified(chunks(&[b"llo"]), &d, 5, 2).unwrap()).await;
        assert_eq!(out.unwrap(), b"llo");
    }
}
