//! Fetching one big blob as several concurrent `Range` requests.
//!
//! Memory stays bounded: at most `concurrency` chunks of `chunk_size` bytes are held while
//! they wait their turn; the bytes still leave in order.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::ParallelFetch;
use super::fetch::{Target, open, resuming};
use crate::{ByteStream, Error, Result};

/// Streams bytes `offset..size` of `t`, fetched in parallel ranges.
pub(super) async fn fetch(
    t: Target,
    offset: u64,
    size: u64,
    p: ParallelFetch,
) -> Result<ByteStream> {
    let mut ranges = Vec::new();
    let mut start = offset;
    while start < size {
        let end = start.saturating_add(p.chunk_size).min(size);
        ranges.push((start, end));
        start = end;
    }
    let chunks = futures::stream::iter(ranges)
        .map(move |(s, e)| {
            let t = t.clone();
            async move {
                let first = open(&t, s, Some(e - 1), None).await?;
                let parts: Vec<Bytes> = resuming(t, first, s, e).try_collect().await?;
                Ok::<_, Error>(futures::stream::iter(parts.into_iter().map(Ok::<_, Error>)))
            }
        })
        .buffered(p.concurrency)
        .try_flatten();
    Ok(Box::pin(chunks))
}
