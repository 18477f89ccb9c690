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

/// A layer's compressed input, buffered, after [`detect`] read its first bytes: they come
/// first, then the rest of the reader.
pub(crate) type Input<R> = BufReader<io::Chain<io::Cursor<Vec<u8>>, R>>;

/// The longest magic number [`detect`] tells apart.
const MAGIC_LEN: usize = 6;

/// Reads the first bytes of `reader` to tell the compression, as many as the longest
/// magic number however short the reader's reads are (a single `fill_buf` could see one
/// byte and take a gzip layer for a plain tar); the input it returns gives them back.
pub(crate) fn detect<R: Read>(mut reader: R) -> Result<(Input<R>, Compression)> {
    let mut head = Vec::with_capacity(MAGIC_LEN);
    (&mut reader)
        .take(MAGIC_LEN as u64)
        .read_to_end(&mut head)
        .map_err(|e| Error::Corrupt {
            at: "start of layer".into(),
            source: e,
        })?;
    let compression = if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else if head.starts_with(XZ_MAGIC) || head.starts_with(BZIP2_MAGIC) {
        return Err(Error::entry(
            "start of layer",
            "xz and bzip2 layers are not supported",
        ));
    } else {
        Compression::None
    };
    let input = BufReader::with_capacity(BUF_SIZE, io::Cursor::new(head).chain(reader));
    Ok((input, compression))
}

/// Wraps the compressed input in the decoder `compression` needs (gzip possibly several
/// members back to back, zstd possibly several frames).
pub(crate) fn decoder<'a, R: BufRead + 'a>(
    input: R,
    compression: Compression,
) -> Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => gzip(input),
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

/// The gzip inflate compiled in, for logs and benchmarks: ISA-L's igzip with the `isal`
/// feature (the default), else zlib-rs (the pure-Rust fallback).
pub const GZIP_INFLATE: &str = if cfg!(feature = "isal") {
    "isal"
} else {
    "zlib-rs"
};

/// The one place the gzip decoder is chosen. Both read every member of a multi-member
/// gzip and check each member's CRC-32 and length.
#[cfg(feature = "isal")]
fn gzip<'a, R: BufRead + 'a>(input: R) -> Box<dyn Read + 'a> {
    Box::new(isal_gzip::Gunzip::new(input))
}

#[cfg(not(feature = "isal"))]
fn gzip<'a, R: BufRead + 'a>(input: R) -> Box<dyn Read + 'a> {
    Box::new(flate2::bufread::MultiGzDecoder::new(input))
}

#[cfg(feature = "isal")]
mod isal_gzip {
    use std::io::{self, BufRead, Read};

    /// isal-rs' streaming gzip decoder, made to behave like flate2's for the stages
    /// above: the input's own errors keep their kind, and bad data is `InvalidData`.
    pub(super) struct Gunzip<R: BufRead>(isal::read::Decoder<Filled<R>>);

    impl<R: BufRead> Gunzip<R> {
        pub(super) fn new(input: R) -> Self {
            Gunzip(isal::read::Decoder::new(Filled(input), isal::Codec::Gzip))
        }
    }

    impl<R: BufRead> Read for Gunzip<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf).map_err(unwrap_error)
        }
    }

    /// isal-rs reports corrupt data as `ErrorKind::Other`; flate2 and the stages above
    /// say `InvalidData`. The input's own errors pass through as they are.
    fn unwrap_error(e: io::Error) -> io::Error {
        let kind = e.kind();
        match e.into_inner() {
            Some(inner) => match inner.downcast::<isal::error::Error>() {
                Ok(isal) => match *isal {
                    isal::error::Error::Io(e) => e,
                    other => io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("corrupt gzip stream: {other}"),
                    ),
                },
                Err(inner) => io::Error::new(kind, inner),
            },
            None => io::Error::from(kind),
        }
    }

    /// Reads until the buffer is full or the input ends. isal-rs takes two reads that
    /// yield no output within a member for corrupt data, so it must never be handed a
    /// short read (a `BufReader` returns one at the end of each of its buffers).
    pub(super) struct Filled<R>(R);

    impl<R: BufRead> Read for Filled<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut n = 0;
            while n < buf.len() {
                match self.0.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(n)
        }
    }
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

/// An uncompressed layer stream that hashes what it delivers: what the tar parser reads.
pub(crate) trait Hashed: BufRead {
    /// The SHA-256 and length of everything the stream took from its source.
    fn finish(self) -> (Digest, u64);
}

impl Hashed for LayerStream<'_> {
    fn finish(self) -> (Digest, u64) {
        // Everything the BufReader holds was hashed when it was read from the decoder.
        self.into_inner().finish()
    }
}

/// The uncompressed tar stream of a layer blob, with the compression its first bytes
/// name: the detection and the decoders [`apply`](crate::apply) uses (for gzip, the one
/// [`GZIP_INFLATE`] names), without the tar parsing, hashing or writing. For tools that
/// want a layer's tar, and for benchmarks of the inflate alone.
///
/// The decoder reports corrupt or truncated data as `io::ErrorKind::InvalidData` or
/// `InvalidInput`, and passes errors of `reader` through unchanged. xz and bzip2 are
/// refused here, as `apply` refuses them.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> Result<(Box<dyn Read + 'a>, Compression)> {
    let (input, compression) = detect(reader)?;
    Ok((decoder(input, compression)?, compression))
}

/// Builds the stream the tar parser reads: input -> detect -> decode -> hash -> buffer.
#[cfg(test)]
pub(crate) fn open<'a, R: Read + 'a>(input: R) -> Result<(LayerStream<'a>, Compression)> {
    let (input, compression) = detect(input)?;
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

/// Reads the chunks the inflate stage sends, hashing each as it arrives. It is its own
/// buffer: the parser reads straight out of the chunk, with no copy into a `BufReader`
/// (that copy was 1.3 GB of `memmove` in a pull of the e2e image).
pub(crate) struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    spare: mpsc::Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    hasher: Digester,
    count: u64,
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
            hasher: Digester::sha256(),
            count: 0,
        }
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.hasher.update(&chunk);
                    self.count += chunk.len() as u64;
                    let done = std::mem::replace(&mut self.cur, chunk);
                    let _ = self.spare.send(done);
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(&[]),
            }
        }
        Ok(&self.cur[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.cur.len());
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = buf.len().min(avail.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl Hashed for ChunkReader {
    fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.count)
    }
}

/// Reads the rest of the stream to EOF so trailing zero blocks are part of the DiffID, then
/// returns the digest and uncompressed size.
pub(crate) fn drain<S: Hashed>(mut stream: S) -> Result<(Digest, u64)> {
    loop {
        let n = match stream.fill_buf() {
            Ok(b) => b.len(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Corrupt {
                    at: "end of archive".into(),
                    source: e,
                });
            }
        };
        if n == 0 {
            return Ok(stream.finish());
        }
        stream.consume(n);
    }
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
        let of = |b: &[u8]| detect(b).map(|(_, c)| c);
        assert_eq!(of(&gz).unwrap(), Compression::Gzip);
        assert_eq!(of(&zs).unwrap(), Compression::Zstd);
        assert_eq!(of(b"plain").unwrap(), Compression::None);
        assert_eq!(of(b"").unwrap(), Compression::None);
        assert!(of(b"BZh91AY").is_err());
        assert!(of(b"\xfd7zXZ\x00rest").is_err());
    }

    #[test]
    fn compression_is_told_however_short_the_first_reads_are() {
        let data = text(100_000);
        for (compressed, want) in [
            (gz(&data), Compression::Gzip),
            (zstd::encode_all(&data[..], 1).unwrap(), Compression::Zstd),
        ] {
            let (mut decoded, c) = decompress(Trickle {
                data: &compressed,
                step: 1,
            })
            .unwrap();
            assert_eq!(c, want);
            let mut out = Vec::new();
            decoded.read_to_end(&mut out).unwrap();
            assert_eq!(out, data);
        }
        let (mut plain, c) = decompress(Trickle {
            data: b"plain tar",
            step: 1,
        })
        .unwrap();
        assert_eq!(c, Compression::None);
        let mut out = Vec::new();
        plain.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"plain tar");
    }

    #[test]
    fn detected_compression_is_the_one_dist_images_reads_from_media_types() {
        use oci_spec::image::MediaType;
        let zs = zstd::encode_all(&b"x"[..], 1).unwrap();
        let from_media_type = dist_images::media_types::compression(&MediaType::ImageLayerZstd);
        assert_eq!(detect(&zs[..]).unwrap().1, from_media_type);
        assert!(decoder(&b""[..], Compression::Unknown).is_err());
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    /// Some MB of text that compresses like a layer's files (not all zeros, not random).
    fn text(n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        let mut i = 0u64;
        while out.len() < n {
            i = i
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(format!("line {} of {:x}\n", i % 977, i >> 40).as_bytes());
        }
        out.truncate(n);
        out
    }

    /// Hands out at most `step` bytes per read, as a slow network does.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn inflate_all(blob: impl Read) -> io::Result<Vec<u8>> {
        let (mut dec, c) = decompress(blob).map_err(io::Error::other)?;
        assert_eq!(c, Compression::Gzip);
        let mut out = Vec::new();
        dec.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn every_member_is_inflated_however_the_input_is_cut() {
        let (a, b) = (text(3 << 20), text(100_000));
        let mut blob = gz(&a);
        blob.extend(gz(b""));
        blob.extend(gz(&b));
        let mut want = a.clone();
        want.extend(&b);
        for step in [2, 7, 4096, 1 << 20] {
            let got = inflate_all(Trickle { data: &blob, step }).unwrap();
            assert!(
                got == want,
                "{GZIP_INFLATE}, reads of {step}: {} bytes",
                got.len()
            );
        }
    }

    #[test]
    fn corrupt_or_truncated_gzip_is_an_error() {
        let blob = gz(&text(1 << 20));
        let mut bad_crc = blob.clone();
        let at = bad_crc.len() - 6;
        bad_crc[at] ^= 0xff;
        let mut bad_data = blob.clone();
        bad_data[blob.len() / 2] ^= 0x55;
        for bad in [
            &bad_crc[..],
            &bad_data[..],
            &blob[..blob.len() - 3],
            &blob[..1000],
        ] {
            let e = inflate_all(bad).unwrap_err();
            assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::InvalidData
                        | io::ErrorKind::InvalidInput
                        | io::ErrorKind::UnexpectedEof
                ),
                "{GZIP_INFLATE}: {e:?}"
            );
        }
    }

    #[test]
    fn errors_of_the_input_keep_their_kind() {
        struct Fails<'a>(&'a [u8]);
        impl Read for Fails<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::ConnectionReset, "gone"));
                }
                let n = buf.len().min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let blob = gz(&text(1 << 20));
        let e = inflate_all(Fails(&blob[..blob.len() / 2])).unwrap_err();
        assert_eq!(
            e.kind(),
            io::ErrorKind::ConnectionReset,
            "{GZIP_INFLATE}: {e:?}"
        );
        assert_eq!(e.to_string(), "gone");
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
