//! Bridges between the synchronous `tar` crate, run on tokio's blocking pool, and the
//! async content store: each store call is driven with `Handle::block_on`, which a
//! blocking-pool thread may do (it is not a runtime worker).

use std::io::{self, Read};

use dist_content::ReaderAt;
use tokio::runtime::Handle;

/// The size of each read from a store and each write into one.
pub(super) const CHUNK: usize = 1 << 20;

/// Reads exactly `size` bytes of a blob, sequentially; a blob that ends early is an
/// `UnexpectedEof` error (a tar entry would otherwise be padded silently).
pub(super) struct BlobReader {
    pub(super) handle: Handle,
    pub(super) reader: Box<dyn ReaderAt>,
    pub(super) offset: u64,
    pub(super) size: u64,
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.size.saturating_sub(self.offset);
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let n = match self.reader.read_at_blocking(&mut buf[..want], self.offset) {
            Some(read) => read,
            None => self
                .handle
                .block_on(self.reader.read_at(&mut buf[..want], self.offset)),
        }
        .map_err(io::Error::other)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("blob ended at {} of {} bytes", self.offset, self.size),
            ));
        }
        self.offset = self.offset.saturating_add(n as u64);
        Ok(n)
    }
}

/// Runs `f` on the blocking pool; a panic or cancellation becomes an error.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> crate::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| crate::Error::other(crate::ErrorKind::Io, io::Error::other(e)))?
}
