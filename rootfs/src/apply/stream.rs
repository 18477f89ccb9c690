//! The byte stream under the tar parser: compression detected from magic bytes, and the
//! DiffID hashed over every uncompressed byte.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc;

use dist_content::Digester;
use oci_spec::image::Digest;

pub use dist_images::media_types::Compression;

use crate::{Error, Result};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const BZIP2_MAGIC: &[u8] = b"BZh";

/// Size of the buffers between decoder, hasher and tar parser: big reads keep the
/// per-call overhead of inflate and SHA-256 negligible.
pub(crate) const BUF_SIZE: usize = 256 * 1024;

/// Looks at the first bytes of `input` (without consuming them) to tell the compression.
pub(crate) fn detect<R: BufRead>(input: &mut R) -> Result<Compression> {
    let mut head = Vec::with_capacity(8);
    // fill_buf may return fewer bytes than a magic number on a short first read; keep
    // peeking through a small lookahead instead of consuming anything.
    let buf = input.fill_buf().map_err(|e| Error::Corrupt {
        at: "start of layer".into(),
        source: e,
    })?;
    head.extend_from_slice(&buf[..buf.len().min(8)]);
    if head.starts_with(GZIP_MAGIC) {
        Ok(Compression::Gzip)
    } else if head.starts_with(ZSTD_MAGIC) {
        Ok(Compression::Zstd)
    } else if head.starts_with(XZ_MAGIC) || head.starts_with(BZIP2_MAGIC) {
        Err(Error::entry(
            "start of layer",
            "xz and bzip2 layers are not supported",
        ))
    } else {
        Ok(Compression::None)
    }
}

/// Wraps the compressed input in the decoder `compression` needs (gzip possibly several
/// members back to back, zstd possibly several frames).
pub(crate) fn decoder<'a, R: BufRead + 'a>(
    input: R,
    compression: Compression,
) -> Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input).map_err(
            |e| Error::Corrupt {
                at: "zstd header".into(),
                source: e,
            },
        )?),
        // `detect` never answers Unknown; a caller-given one cannot be decoded.
        _ => {
            return Err(Error::entry("start of layer", "unknown layer compression"));
        }
    })
}

/// Hashes and counts every byte read through it: the DiffID is the SHA-256 of the whole
/// uncompressed stream, including the tar's end-of-archive blocks and any padding.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Digester,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Digester::sha256(),
            count: 0,
        }
    }

    /// The SHA-256 digest and byte count of everything read so far.
    pub(crate) fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A buffered hashing stream over decompressed layer bytes.
pub(crate) type LayerStream<'a> = BufReader<HashingReader<Box<dyn Read + 'a>>>;

/// Builds the stream the tar parser reads: input -> detect -> decode -> hash -> buffer.
#[cfg(test)]
pub(crate) fn open<'a, R: Read + 'a>(input: R) -> Result<(LayerStream<'a>, Compression)> {
    let mut input = BufReader::with_capacity(BUF_SIZE, input);
    let compression = detect(&mut input)?;
    let decoded = decoder(input, compression)?;
    Ok((
        BufReader::with_capacity(BUF_SIZE, HashingReader::new(decoded)),
        compression,
    ))
}

/// Wraps decoded bytes in the hashing, buffered stream the tar parser reads.
pub(crate) fn hashed<'a>(decoded: Box<dyn Read + 'a>) -> LayerStream<'a> {
    BufReader::with_capacity(BUF_SIZE, HashingReader::new(decoded))
}

/// The inflate stage: decodes `input` and sends the bytes in chunks of up to `chunk`
/// bytes; a decode error is sent as the last item. Stops when the receiver is gone.
pub(crate) fn inflate<R: BufRead>(
    input: R,
    compression: Compression,
    chunk: usize,
    tx: &mpsc::SyncSender<io::Result<Vec<u8>>>,
    spare: &mpsc::Receiver<Vec<u8>>,
) {
    let mut dec = match decoder(input, compression) {
        Ok(d) => d,
        Err(e) => {
            let _ = tx.send(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
            return;
        }
    };
    loop {
        // Reuse buffers the reader is done with: fresh ones cost page faults and frees
        // across threads. They come back full length, so this zeroes only a new buffer
        // (or the tail of the one that carried the last short chunk), not every chunk.
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.resize(chunk, 0);
        let mut filled = 0;
        while filled < chunk {
            match dec.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        if filled == 0 {
            return;
        }
        buf.truncate(filled);
        if tx.send(Ok(buf)).is_err() {
            return;
        }
    }
}

/// Reads the chunks the inflate stage sends.
pub(crate) struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    spare: mpsc::Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    /// Reads chunks from `rx`, handing finished buffers back through `spare`.
    pub(crate) fn new(
        rx: mpsc::Receiver<io::Result<Vec<u8>>>,
        spare: mpsc::Sender<Vec<u8>>,
    ) -> Self {
        ChunkReader {
            rx,
            spare,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    let done = std::mem::replace(&mut self.cur, chunk);
                    let _ = self.spare.send(done);
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads the rest of the stream to EOF so trailing zero blocks are part of the DiffID, then
/// returns the digest and uncompressed size.
pub(crate) fn drain(mut stream: LayerStream<'_>) -> Result<(Digest, u64)> {
    io::copy(&mut stream, &mut io::sink()).map_err(|e| Error::Corrupt {
        at: "end of archive".into(),
        source: e,
    })?;
    // Everything the BufReader holds was already hashed when it was read from the decoder.
    Ok(stream.into_inner().finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn detects_gzip_zstd_and_plain_from_magic() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"hello").unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&b"hello"[..], 1).unwrap();
        assert_eq!(detect(&mut &gz[..]).unwrap(), Compression::Gzip);
        assert_eq!(detect(&mut &zs[..]).unwrap(), Compression::Zstd);
        assert_eq!(detect(&mut &b"plain"[..]).unwrap(), Compression::None);
        assert!(detect(&mut &b"BZh91AY"[..]).is_err());
    }

    #[test]
    fn detected_compression_is_the_one_dist_images_reads_from_media_types() {
        use oci_spec::image::MediaType;
        let zs = zstd::encode_all(&b"x"[..], 1).unwrap();
        let from_media_type = dist_images::media_types::compression(&MediaType::ImageLayerZstd);
        assert_eq!(detect(&mut &zs[..]).unwrap(), from_media_type);
        assert!(decoder(&b""[..], Compression::Unknown).is_err());
    }

    #[test]
    fn hashes_multi_member_gzip_as_one_stream() {
        let mut all = Vec::new();
        for part in [&b"abc"[..], &b"def"[..]] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(part).unwrap();
            all.extend(gz.finish().unwrap());
        }
        let (stream, c) = open(&all[..]).unwrap();
        assert_eq!(c, Compression::Gzip);
        let (digest, n) = drain(stream).unwrap();
        assert_eq!(n, 6);
        assert_eq!(digest, dist_content::sha256_of(b"abcdef"));
    }
}
