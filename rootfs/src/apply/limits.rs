//! Bounds on what a layer can make the parser hold in memory, checked before it is read.
//!
//! The `tar` crate reads a PAX extended header (`x`) or a GNU long name or long link
//! (`L`/`K`) into memory whole, whatever size its header block claims: a layer of a few
//! hundred bytes of gzip could make it allocate gigabytes. [`HeaderGuard`] sits between the
//! decompressed stream and the `tar` crate and follows the archive's framing itself (a
//! 512-byte header block, then the entry's data rounded up to 512 bytes). It looks at
//! every header block before handing it on and refuses a special header over
//! [`MAX_SPECIAL_HEADER`], as Go's `archive/tar` (and so containerd) does. Entry data goes
//! straight from the inner reader into the parser's buffer: only header blocks are copied.

use std::fmt;
use std::io::{self, Read};

use tar::PaxExtensions;

/// The largest PAX extended header (`x`, `g`) or GNU long name or long link (`L`, `K`)
/// accepted, in bytes: the `tar` crate reads these whole. 1 MiB is Go's `archive/tar` limit,
/// far above any real name (Linux paths stop at 4 KiB) or set of records.
pub const MAX_SPECIAL_HEADER: u64 = 1 << 20;

/// The most PAX records one entry may carry. Real archives carry a handful (path,
/// linkpath, times, ids, a few xattrs); the bound keeps a 1 MiB header of tiny records
/// from turning into a hundred thousand parsed values.
pub const MAX_PAX_RECORDS: usize = 1024;

/// The most extended attributes one entry may set. Linux keeps all of a file's xattrs in
/// one 64 KiB block on most filesystems; each is one set call, so the count is bounded too.
pub const MAX_XATTRS: usize = 128;

const BLOCK: usize = 512;
/// Offset of the size field in a tar header block (12 bytes, octal or GNU base-256).
const SIZE_FIELD: std::ops::Range<usize> = 124..136;
const TYPEFLAG: usize = 156;
const MAGIC: std::ops::Range<usize> = 257..265;
/// In a GNU sparse header: set when extension blocks of sparse map follow the header.
const GNU_IS_EXTENDED: usize = 482;
/// The same flag in a sparse extension block.
const EXT_IS_EXTENDED: usize = 504;

/// Which bound a layer exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// A PAX extended header (`x`) over [`MAX_SPECIAL_HEADER`] bytes.
    PaxHeader,
    /// A PAX global header (`g`) over [`MAX_SPECIAL_HEADER`] bytes.
    PaxGlobalHeader,
    /// A GNU long name (`L`) over [`MAX_SPECIAL_HEADER`] bytes.
    GnuLongName,
    /// A GNU long link name (`K`) over [`MAX_SPECIAL_HEADER`] bytes.
    GnuLongLink,
    /// More than [`MAX_PAX_RECORDS`] PAX records for one entry.
    PaxRecords,
    /// More than [`MAX_XATTRS`] extended attributes on one entry.
    Xattrs,
}

impl Limit {
    /// The bound itself: bytes for headers, a count for records and xattrs.
    pub fn max(self) -> u64 {
        match self {
            Limit::PaxHeader | Limit::PaxGlobalHeader | Limit::GnuLongName | Limit::GnuLongLink => {
                MAX_SPECIAL_HEADER
            }
            Limit::PaxRecords => MAX_PAX_RECORDS as u64,
            Limit::Xattrs => MAX_XATTRS as u64,
        }
    }

    fn of_typeflag(t: u8) -> Option<Limit> {
        match t {
            b'x' => Some(Limit::PaxHeader),
            b'g' => Some(Limit::PaxGlobalHeader),
            b'L' => Some(Limit::GnuLongName),
            b'K' => Some(Limit::GnuLongLink),
            _ => None,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::PaxHeader => "PAX extended header bytes",
            Limit::PaxGlobalHeader => "PAX global header bytes",
            Limit::GnuLongName => "GNU long name bytes",
            Limit::GnuLongLink => "GNU long link name bytes",
            Limit::PaxRecords => "PAX records",
            Limit::Xattrs => "extended attributes",
        })
    }
}

/// A refused special header, carried through the `tar` crate as the payload of an
/// `io::Error` and turned back into [`Error::LimitExceeded`](crate::Error::LimitExceeded).
#[derive(Debug)]
pub(crate) struct Exceeded {
    pub(crate) limit: Limit,
    /// The header block's own name field (elided), and where it starts.
    pub(crate) entry: String,
    pub(crate) actual: u64,
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {} over the limit of {}",
            self.entry,
            self.actual,
            self.limit,
            self.limit.max()
        )
    }
}

impl std::error::Error for Exceeded {}

/// Where the guard is in the archive's framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// At a block boundary: the next block is a header.
    Header,
    /// At a block boundary inside a GNU sparse header's extension blocks; `data` bytes
    /// (data and padding) follow the last one.
    SparseExt { data: u64 },
}

/// Passes a tar stream through unchanged, refusing special headers over
/// [`MAX_SPECIAL_HEADER`] before any of their data is read.
///
/// It follows the framing exactly as the `tar` crate (0.4) reads it, or the two would
/// disagree on where headers are: the size field in octal or base-256, a PAX `size`
/// record overriding the next entry's size, and GNU sparse extension blocks between a
/// sparse header and its data. Whatever it cannot parse it passes on for the `tar` crate
/// to refuse.
pub(crate) struct HeaderGuard<R> {
    inner: R,
    /// Bytes of entry data and padding before the next block boundary.
    data_left: u64,
    at: At,
    /// The block being handed on: read whole and looked at before any of it is.
    block: [u8; BLOCK],
    block_len: usize,
    block_pos: usize,
    /// The body of a PAX extended header being passed on, kept (it is at most
    /// [`MAX_SPECIAL_HEADER`]) to read its `size` record; and how much of it is to come.
    pax: Option<Vec<u8>>,
    pax_left: u64,
    /// The last PAX header's `size` record: the next entry's real size.
    pax_size: Option<u64>,
    /// Bytes passed on so far, for messages.
    offset: u64,
}

impl<R: Read> HeaderGuard<R> {
    pub(crate) fn new(inner: R) -> Self {
        HeaderGuard {
            inner,
            data_left: 0,
            at: At::Header,
            block: [0; BLOCK],
            block_len: 0,
            block_pos: 0,
            pax: None,
            pax_left: 0,
            pax_size: None,
            offset: 0,
        }
    }

    /// Reads the next whole block (or what is left before EOF) into `block`.
    fn fill_block(&mut self) -> io::Result<()> {
        let mut filled = 0;
        while filled < BLOCK {
            match self.inner.read(&mut self.block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.block_len = filled;
        self.block_pos = 0;
        Ok(())
    }

    /// Looks at a whole header block and sets up the framing for what follows it.
    fn inspect(&mut self) -> io::Result<()> {
        let h = self.block;
        if h.iter().all(|b| *b == 0) {
            // End of archive: the tar crate stops reading here.
            return Ok(());
        }
        let typeflag = h[TYPEFLAG];
        let magic = &h[MAGIC];
        let ustar = magic == b"ustar\x0000";
        let gnu = magic == b"ustar  \x00";
        let recognized = ustar || gnu;
        // A malformed size is the tar crate's to report; nothing after it is read.
        let Some(header_size) = parse_size(&h[SIZE_FIELD]) else {
            self.pax_size = None;
            return Ok(());
        };
        let special = Limit::of_typeflag(typeflag);
        if let Some(limit) = special
            && header_size > MAX_SPECIAL_HEADER
        {
            let name = &h[..100];
            let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
            return Err(io::Error::other(Exceeded {
                limit,
                entry: format!(
                    "{:?} (tar header at byte {})",
                    dist_content::elide(&String::from_utf8_lossy(name)),
                    self.offset.saturating_sub(BLOCK as u64)
                ),
                actual: header_size,
            }));
        }
        // As the tar crate reads it: a PAX size applies to the next header that is not
        // itself a special one, and headers the crate does not treat as extensions
        // (anything but a recognised `x`/`L`/`K`) end what a PAX header described.
        let size = match self.pax_size {
            Some(s) if special.is_none() => s,
            _ => header_size,
        };
        let extension = recognized && matches!(typeflag, b'x' | b'L' | b'K');
        if !extension {
            self.pax_size = None;
        }
        if recognized && typeflag == b'x' {
            self.pax = Some(Vec::new());
            self.pax_left = header_size;
            if header_size == 0 {
                self.end_pax();
            }
        }
        // An overflowing size is refused by the tar crate.
        let padded = size
            .checked_add(BLOCK as u64 - 1)
            .map(|s| s & !(BLOCK as u64 - 1));
        let padded = padded.unwrap_or(0);
        if typeflag == b'S' && gnu && h[GNU_IS_EXTENDED] == 1 {
            self.at = At::SparseExt { data: padded };
        } else {
            self.data_left = padded;
        }
        Ok(())
    }

    /// A PAX header's body is complete: keep its `size` record, read as the tar crate
    /// reads it (the first `size` record; a malformed record hides it).
    fn end_pax(&mut self) {
        let Some(body) = self.pax.take() else {
            return;
        };
        self.pax_size = None;
        for ext in PaxExtensions::new(&body) {
            let Ok(ext) = ext else {
                return;
            };
            if ext.key() != Ok("size") {
                continue;
            }
            self.pax_size = ext.value().ok().and_then(|v| v.parse::<u64>().ok());
            return;
        }
    }

    /// Keeps the part of `data` that belongs to the PAX header being passed on.
    fn capture(&mut self, data: &[u8]) {
        if let Some(body) = &mut self.pax {
            let n = usize::try_from(self.pax_left)
                .unwrap_or(usize::MAX)
                .min(data.len());
            body.extend_from_slice(&data[..n]);
            self.pax_left -= n as u64;
            if self.pax_left == 0 {
                self.end_pax();
            }
        }
    }
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.block_pos < self.block_len {
                let n = buf.len().min(self.block_len - self.block_pos);
                buf[..n].copy_from_slice(&self.block[self.block_pos..self.block_pos + n]);
                self.block_pos += n;
                return Ok(n);
            }
            if self.data_left > 0 {
                let want = usize::try_from(self.data_left)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                let n = self.inner.read(&mut buf[..want])?;
                self.data_left -= n as u64;
                self.offset += n as u64;
                if self.pax.is_some() {
                    self.capture(&buf[..n]);
                }
                return Ok(n);
            }
            self.fill_block()?;
            if self.block_len == 0 {
                return Ok(0);
            }
            self.offset += self.block_len as u64;
            if self.block_len < BLOCK {
                // Truncated: hand on what there is and let the tar crate report it.
                continue;
            }
            match self.at {
                At::Header => self.inspect()?,
                At::SparseExt { data } => {
                    if self.block[EXT_IS_EXTENDED] != 1 {
                        self.at = At::Header;
                        self.data_left = data;
                    }
                }
            }
        }
    }
}

/// A tar numeric field as the tar crate reads it: GNU base-256 when the top bit of the
/// first byte is set (the last 8 bytes), else octal up to the first NUL, spaces trimmed.
fn parse_size(field: &[u8]) -> Option<u64> {
    if field.first()? & 0x80 != 0 {
        let tail = &field[field.len().checked_sub(8)?..];
        let mut v: u64 = 0;
        for (i, b) in tail.iter().enumerate() {
            // A 12-byte field's first byte (the flag) is not among the last 8.
            let b = if field.len() == 8 && i == 0 {
                b ^ 0x80
            } else {
                *b
            };
            v = (v << 8) | u64::from(b);
        }
        return Some(v);
    }
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    let s = std::str::from_utf8(&field[..end]).ok()?;
    u64::from_str_radix(s.trim(), 8).ok()
}

#[cfg(test)]
mod tests;
