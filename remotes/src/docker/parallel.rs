//! Fetching one big blob as several concurrent `Range` requests.
//!
//! Memory stays bounded: at most `concurrency` chunks of `chunk_size` bytes are held while
//! they wait their turn; the bytes still leave in order.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::ParallelFetch;
use super::fetch::{Target, open, resuming};
use crate::{ByteStream, Error};

/// Streams bytes `offset..size` of `t`, fetched in parallel ranges.
///
/// The ranges are produced lazily: a descriptor's size, however large, never decides how
/// much is allocated up front.
pub(super) fn fetch(t: Target, offset: u64, size: u64, p: ParallelFetch) -> ByteStream {
    let step = p.chunk_size.max(1);
    let ranges = futures::stream::unfold(offset, move |start| async move {
        (start < size).then(|| {
            let end = start.saturating_add(step).min(size);
            ((start, end), end)
        })
    });
    let chunks = ranges
        .map(move |(s, e)| {
            let t = t.clone();
            async move {
                // `e > s` by construction, so `e - 1` cannot wrap.
                let first = open(&t, s, Some(e.saturating_sub(1)), None).await?;
                let parts: Vec<Bytes> = resuming(t, first, s, e).try_collect().await?;
                Ok::<_, Error>(futures::stream::iter(parts.into_iter().map(Ok::<_, Error>)))
            }
        })
        .buffered(p.concurrency.max(1))
        .try_flatten();
    Box::pin(chunks)
}
