//! Tar header bombs: special headers (PAX `x`/`g`, GNU `L`/`K`) that claim hundreds of
//! megabytes are refused at their header block, before the `tar` crate reads them into
//! memory; PAX records and xattrs per entry are bounded; errors quote names elided.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dist_rootfs::{ApplyOptions, Error, ErrorKind, Limit, MAX_SPECIAL_HEADER, apply};
use tar::{EntryType, Header};

const MIB: u64 = 1 << 20;
/// What each bomb claims.
const CLAIMED: u64 = 512 * MIB;
/// How much of a layer `apply` may read before it refuses a header bomb: at most the
/// pipeline's fixed read-ahead (a 256 KiB input buffer, eight 256 KiB chunks queued, one
/// being filled and one being parsed: 2.75 MiB), whatever the header claims. About
/// 1.5-1.8 MiB in practice.
const READ_BOUND: u64 = 3 * MIB;
/// A refusal is one short line.
const MESSAGE_BOUND: usize = 600;

/// One 512-byte ustar header block.
fn header(etype: EntryType, name: &str, size: u64) -> Vec<u8> {
    let mut h = Header::new_ustar();
    h.set_path(name).unwrap();
    h.set_entry_type(etype);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// A tar stream generated on the fly: `head`, then zeros up to `len` bytes.
struct Generated {
    head: Vec<u8>,
    pos: u64,
    len: u64,
    read: Arc<AtomicU64>,
}

impl Generated {
    fn new(head: Vec<u8>, len: u64) -> (Self, Arc<AtomicU64>) {
        let read = Arc::new(AtomicU64::new(0));
        let g = Generated {
            head,
            pos: 0,
            len,
            read: Arc::clone(&read),
        };
        (g, read)
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.len - self.pos).unwrap_or(usize::MAX);
        let n = buf.len().min(left);
        buf[..n].fill(0);
        let at = usize::try_from(self.pos).unwrap();
        if let Some(head) = self.head.get(at..) {
            let m = head.len().min(n);
            buf[..m].copy_from_slice(&head[..m]);
        }
        self.pos += n as u64;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// gzip members back to back (a multi-member gzip is one stream): the bomb's header,
/// then `CLAIMED` bytes of zeros one MiB member at a time, generated as read. Under
/// 1 MB however much it claims.
struct GzipBomb {
    members: Vec<Vec<u8>>,
    zeros: Arc<Vec<u8>>,
    zero_members: u64,
    cur: Vec<u8>,
    pos: usize,
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

impl GzipBomb {
    fn new(head: &[u8]) -> Self {
        GzipBomb {
            members: vec![gzip(head)],
            zeros: Arc::new(gzip(&vec![0; MIB as usize])),
            zero_members: CLAIMED / MIB + 1,
            cur: Vec::new(),
            pos: 0,
        }
    }

    fn compressed_len(&self) -> u64 {
        self.members[0].len() as u64 + self.zero_members * self.zeros.len() as u64
    }
}

impl Read for GzipBomb {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            self.pos = 0;
            if let Some(m) = self.members.pop() {
                self.cur = m;
            } else if self.zero_members > 0 {
                self.zero_members -= 1;
                self.cur = self.zeros.to_vec();
            } else {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn limit_of(e: &Error) -> Option<(Limit, u64)> {
    match e {
        Error::LimitExceeded { limit, actual, .. } => Some((*limit, *actual)),
        _ => None,
    }
}

/// Applies a bomb of `etype` claiming [`CLAIMED`] bytes both plain (counting what is
/// read) and as a small gzip layer, and checks each is refused as `limit` at its header.
fn assert_bomb_refused(etype: EntryType, limit: Limit) {
    // A real entry first, so the bomb is not at offset 0.
    let mut head = header(EntryType::Regular, "ok", 3);
    head.extend(b"abc");
    head.resize(1024, 0);
    head.extend(header(etype, "bomb", CLAIMED));
    let total = head.len() as u64 + CLAIMED + 1024;

    let dir = tempfile::tempdir().unwrap();
    let (plain, read) = Generated::new(head.clone(), total);
    let err = apply(plain, dir.path(), &ApplyOptions::default()).unwrap_err();
    assert_eq!(limit_of(&err), Some((limit, CLAIMED)), "{err}");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let msg = err.to_string();
    assert!(msg.len() < MESSAGE_BOUND, "{} bytes: {msg}", msg.len());
    assert!(msg.contains("over the limit of 1048576"), "{msg}");
    let read = read.load(Ordering::Relaxed);
    assert!(
        read <= READ_BOUND,
        "read {read} bytes of a {CLAIMED}-byte bomb"
    );

    let dir = tempfile::tempdir().unwrap();
    let bomb = GzipBomb::new(&head);
    assert!(
        bomb.compressed_len() < 1_000_000,
        "{}",
        bomb.compressed_len()
    );
    let err = apply(bomb, dir.path(), &ApplyOptions::default()).unwrap_err();
    assert_eq!(limit_of(&err), Some((limit, CLAIMED)), "{err}");
    assert!(err.to_string().len() < MESSAGE_BOUND);
}

#[test]
fn pax_extended_header_of_512_mib_is_refused_before_it_is_read() {
    assert_bomb_refused(EntryType::XHeader, Limit::PaxHeader);
}

#[test]
fn pax_global_header_of_512_mib_is_refused_before_it_is_read() {
    assert_bomb_refused(EntryType::XGlobalHeader, Limit::PaxGlobalHeader);
}

#[test]
fn gnu_long_name_of_512_mib_is_refused_before_it_is_read() {
    assert_bomb_refused(EntryType::GNULongName, Limit::GnuLongName);
}

#[test]
fn gnu_long_link_of_512_mib_is_refused_before_it_is_read() {
    assert_bomb_refused(EntryType::GNULongLink, Limit::GnuLongLink);
}

/// A PAX header of `records`, then a regular file `f` with `data`.
fn pax_then_file(records: &[u8], data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut ph = Header::new_ustar();
    ph.set_path("PaxHeader").unwrap();
    ph.set_entry_type(EntryType::XHeader);
    ph.set_size(records.len() as u64);
    ph.set_cksum();
    b.append(&ph, records).unwrap();
    let mut h = Header::new_ustar();
    h.set_path("f").unwrap();
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

fn records(n: usize, key: impl Fn(usize) -> String) -> Vec<u8> {
    (0..n)
        .flat_map(|i| common::pax_record(&key(i), b"v"))
        .collect()
}

#[test]
fn pax_records_are_bounded_per_entry() {
    let at_limit = records(dist_rootfs::MAX_PAX_RECORDS, |i| format!("dist.test.{i}"));
    let dir = tempfile::tempdir().unwrap();
    common::apply(&pax_then_file(&at_limit, b"x"), dir.path()).unwrap();
    assert_eq!(common::read_in_root(dir.path(), "f").unwrap(), b"x");

    let over = records(dist_rootfs::MAX_PAX_RECORDS + 1, |i| {
        format!("dist.test.{i}")
    });
    let dir = tempfile::tempdir().unwrap();
    let err = common::apply(&pax_then_file(&over, b"x"), dir.path()).unwrap_err();
    assert_eq!(
        limit_of(&err),
        Some((Limit::PaxRecords, dist_rootfs::MAX_PAX_RECORDS as u64 + 1)),
        "{err}"
    );
    assert!(
        common::read_in_root(dir.path(), "f").is_err(),
        "not applied"
    );
}

#[test]
fn xattrs_are_bounded_per_entry() {
    let over = records(dist_rootfs::MAX_XATTRS + 1, |i| {
        format!("SCHILY.xattr.user.dist{i}")
    });
    let dir = tempfile::tempdir().unwrap();
    let err = common::apply(&pax_then_file(&over, b"x"), dir.path()).unwrap_err();
    assert_eq!(
        limit_of(&err),
        Some((Limit::Xattrs, dist_rootfs::MAX_XATTRS as u64 + 1)),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn pax_header_of_exactly_the_limit_is_read() {
    // One record filling the header to exactly 1 MiB.
    let overhead = common::pax_record("comment", b"").len();
    let mut value = vec![b'c'; usize::try_from(MAX_SPECIAL_HEADER).unwrap() - overhead];
    let mut record = common::pax_record("comment", &value);
    while record.len() as u64 > MAX_SPECIAL_HEADER {
        value.pop();
        record = common::pax_record("comment", &value);
    }
    while (record.len() as u64) < MAX_SPECIAL_HEADER {
        value.push(b'c');
        record = common::pax_record("comment", &value);
    }
    assert_eq!(record.len() as u64, MAX_SPECIAL_HEADER);
    let dir = tempfile::tempdir().unwrap();
    common::apply(&pax_then_file(&record, b"data"), dir.path()).unwrap();
    assert_eq!(common::read_in_root(dir.path(), "f").unwrap(), b"data");
}

#[test]
fn a_pax_size_record_sets_the_entry_size() {
    // The file's header says 0 bytes; its PAX record says 600, as writers do for sizes
    // the header cannot hold. The guard must frame the stream the way the tar crate does.
    let data: Vec<u8> = (0..600u32).map(|i| (i % 251) as u8).collect();
    let mut b = tar::Builder::new(Vec::new());
    let rec = common::pax_record("size", b"600");
    let mut ph = Header::new_ustar();
    ph.set_path("PaxHeader").unwrap();
    ph.set_entry_type(EntryType::XHeader);
    ph.set_size(rec.len() as u64);
    ph.set_cksum();
    b.append(&ph, &rec[..]).unwrap();
    let mut h = Header::new_ustar();
    h.set_path("big").unwrap();
    h.set_mode(0o644);
    h.set_size(0);
    h.set_cksum();
    b.append(&h, &data[..]).unwrap();
    let mut h = Header::new_ustar();
    h.set_path("after").unwrap();
    h.set_mode(0o644);
    h.set_size(2);
    h.set_cksum();
    b.append(&h, &b"hi"[..]).unwrap();
    let layer = b.into_inner().unwrap();
    let dir = tempfile::tempdir().unwrap();
    common::apply(&layer, dir.path()).unwrap();
    assert_eq!(common::read_in_root(dir.path(), "big").unwrap(), data);
    assert_eq!(common::read_in_root(dir.path(), "after").unwrap(), b"hi");
}

#[test]
fn a_long_name_just_under_the_limit_fails_with_an_elided_message() {
    // One path component of almost 1 MiB: read (it is under the limit), then refused by
    // the filesystem; the error quotes 256 bytes of it and its length.
    let name = vec![b'n'; usize::try_from(MAX_SPECIAL_HEADER).unwrap() - 1];
    let mut b = tar::Builder::new(Vec::new());
    let mut lh = Header::new_gnu();
    lh.set_path("././@LongLink").unwrap();
    lh.set_entry_type(EntryType::GNULongName);
    lh.set_size(name.len() as u64);
    lh.set_cksum();
    b.append(&lh, &name[..]).unwrap();
    let mut h = Header::new_gnu();
    h.set_path("short").unwrap();
    h.set_mode(0o644);
    h.set_size(1);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let layer = b.into_inner().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = common::apply(&layer, dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.len() < MESSAGE_BOUND, "{} bytes: {msg:.600}", msg.len());
    assert!(msg.contains(&format!("({} bytes)", name.len())), "{msg}");
}

#[test]
fn a_long_symlink_target_error_is_elided() {
    // A PAX linkpath of 512 KiB: under the header limit, too long for symlinkat.
    let target = "t/".repeat(256 * 1024);
    let mut layer = common::Layer::new();
    layer.symlink(&target, "link");
    let dir = tempfile::tempdir().unwrap();
    match common::apply(&layer.build(), dir.path()) {
        Ok(_) => panic!("a 512 KiB symlink target was created"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.len() < MESSAGE_BOUND, "{} bytes: {msg:.600}", msg.len());
        }
    }
}
