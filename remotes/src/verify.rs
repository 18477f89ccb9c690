//! Checking a byte stream against its descriptor: size and digest.

use bytes::Bytes;
use dist_content::Digester;
use futures::StreamExt;
use oci_spec::image::Digest;

use crate::{ByteStream, Error, Result};

/// Wraps `inner`, which should deliver bytes `offset..size` of the content named by
/// `digest`. Fails as soon as more than that arrives; at the end, fails when less arrived
/// or (when `offset` is 0) when the digest differs.
///
/// The [`Fetcher`](crate::Fetcher) contract asks every stream to end in an error rather
/// than in short or wrong data: a fetcher of your own wraps its body in this.
///
/// ```
/// # tokio_test_block_on(async {
/// use futures::{StreamExt, stream};
/// let digest = dist_content::sha256_of(b"hello");
/// let body: dist_remotes::ByteStream =
///     Box::pin(stream::iter([Ok(bytes::Bytes::from_static(b"hello"))]));
/// let mut checked = dist_remotes::verified(body, &digest, 5, 0)?;
/// while let Some(chunk) = checked.next().await {
///     chunk?;
/// }
/// # Ok::<(), dist_remotes::Error>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub fn verified(inner: ByteStream, digest: &Digest, size: u64, offset: u64) -> Result<ByteStream> {
    checked(inner, digest, size, offset, true)
}

/// [`verified`], hashing only when `hash` is true (the size is always held): for a
/// caller that checks the digest itself.
pub(crate) fn checked(
    inner: ByteStream,
    digest: &Digest,
    size: u64,
    offset: u64,
    hash: bool,
) -> Result<ByteStream> {
    struct State {
        inner: ByteStream,
        hasher: Option<Digester>,
        seen: u64,
        done: bool,
    }
    // sha256, sha384 or sha512, as the digest names; anything else is InvalidArgument.
    let hasher = if offset == 0 {
        let digester = Digester::for_digest(digest)?;
        hash.then_some(digester)
    } else {
        None
    };
    let what = digest.to_string();
    let expected = digest.clone();
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
                    match st.hasher.take().map(Digester::finish) {
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
    async fn sha384_and_sha512_content_is_verified_with_its_own_algorithm() {
        use dist_content::{Algorithm, digest_of};
        for alg in [Algorithm::Sha384, Algorithm::Sha512] {
            let d = digest_of(alg, b"hello");
            let out = run(verified(chunks(&[b"he", b"llo"]), &d, 5, 0).unwrap()).await;
            assert_eq!(out.unwrap(), b"hello", "{alg}");
            let err = run(verified(chunks(&[b"hellO"]), &d, 5, 0).unwrap())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::FailedPrecondition, "{alg}");
            assert!(err.to_string().contains(alg.name()), "{err}");
        }
    }

    #[test]
    fn an_unsupported_algorithm_is_an_invalid_argument() {
        let d: Digest = format!("blake3:{}", "0".repeat(64)).parse().unwrap();
        let err = verified(chunks(&[b"hello"]), &d, 5, 0).err().unwrap();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument, "{err}");
    }

    #[tokio::test]
    async fn from_an_offset_only_the_size_is_checked() {
        let d: Digest = HELLO.parse().unwrap();
        let out = run(verified(chunks(&[b"llo"]), &d, 5, 2).unwrap()).await;
        assert_eq!(out.unwrap(), b"llo");
    }

    #[test]
    fn an_unsupported_algorithm_is_its_own_error_not_an_invalid_reference() {
        let d: Digest = "blake3:0123456789abcdef".parse().unwrap();
        let err = verified(chunks(&[b"x"]), &d, 1, 0).err().unwrap();
        assert!(
            matches!(&err, Error::UnsupportedDigestAlgorithm { algorithm, .. } if algorithm == "blake3"),
            "{err:?}"
        );
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        assert!(
            err.to_string().contains("unsupported digest algorithm"),
            "{err}"
        );
    }
}
