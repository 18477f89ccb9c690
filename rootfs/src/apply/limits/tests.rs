//! The guard against hand-built header blocks, and against the tar crate on random archives.

use super::*;

fn header(typeflag: u8, size: u64) -> [u8; BLOCK] {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::new(typeflag));
    h.set_size(size);
    h.set_path("name").unwrap();
    h.set_cksum();
    let mut out = [0; BLOCK];
    out.copy_from_slice(h.as_bytes());
    out
}

#[test]
fn size_fields_parse_octal_and_base256() {
    assert_eq!(parse_size(b"00000001000\0"), Some(512));
    assert_eq!(parse_size(b"  777 \0\0\0\0\0\0"), Some(0o777));
    let mut big = [0u8; 12];
    big[0] = 0x80;
    big[4..].copy_from_slice(&(1u64 << 40).to_be_bytes());
    assert_eq!(parse_size(&big), Some(1 << 40));
    assert_eq!(parse_size(b"zz"), None);
}

#[test]
fn passes_entries_through_and_refuses_a_big_long_name_at_its_header() {
    let mut tar = Vec::new();
    tar.extend(header(b'0', 3));
    tar.extend(b"abc");
    tar.resize(1024, 0);
    tar.extend(header(b'L', MAX_SPECIAL_HEADER + 1));
    tar.resize(4096, 0);
    let mut g = HeaderGuard::new(&tar[..]);
    let mut first = vec![0; 1024];
    g.read_exact(&mut first).unwrap();
    assert_eq!(first, tar[..1024]);
    let err = g.read(&mut [0; 512]).unwrap_err();
    let exceeded = err.get_ref().unwrap().downcast_ref::<Exceeded>().unwrap();
    assert_eq!(exceeded.limit, Limit::GnuLongName);
    assert_eq!(exceeded.actual, MAX_SPECIAL_HEADER + 1);
}

#[test]
fn a_pax_size_record_moves_the_next_header() {
    // The file's own header says 0 bytes, its PAX record 600: the block at 512 is
    // data, not a header, even though it looks like a huge long-name header.
    let record = b"12 size=600\n";
    let mut tar = Vec::new();
    tar.extend(header(b'x', record.len() as u64));
    tar.extend(record);
    tar.resize(1024, 0);
    tar.extend(header(b'0', 0));
    tar.extend(header(b'L', 1 << 40));
    tar.resize(1536 + 1024, 0);
    tar.extend(header(b'0', 0));
    tar.resize(tar.len() + 1024, 0);
    let mut out = Vec::new();
    HeaderGuard::new(&tar[..]).read_to_end(&mut out).unwrap();
    assert_eq!(out, tar);
}

#[test]
fn gnu_sparse_extension_blocks_are_not_headers() {
    // A sparse header with one extension block (which looks like a huge long-name
    // header but is part of the sparse map), 512 bytes of data, then a real bomb.
    let mut sparse = tar::Header::new_gnu();
    sparse.set_entry_type(tar::EntryType::GNUSparse);
    sparse.set_size(512);
    sparse.set_path("sparse").unwrap();
    let mut h = [0; BLOCK];
    h.copy_from_slice(sparse.as_bytes());
    h[GNU_IS_EXTENDED] = 1;
    let mut tar = h.to_vec();
    let mut ext = header(b'L', 1 << 40);
    ext[EXT_IS_EXTENDED] = 0;
    tar.extend(ext);
    tar.resize(1536, 0);
    tar.extend(header(b'L', 1 << 30));
    let mut g = HeaderGuard::new(&tar[..]);
    let mut before = vec![0; 1536];
    g.read_exact(&mut before).unwrap();
    let err = g.read(&mut [0; 512]).unwrap_err();
    let exceeded = err.get_ref().unwrap().downcast_ref::<Exceeded>().unwrap();
    assert_eq!(exceeded.actual, 1 << 30);
    assert!(
        exceeded.entry.contains("at byte 1536"),
        "{}",
        exceeded.entry
    );
}

/// One random entry: a file, a symlink, or a file whose size is in a PAX record.
#[derive(Debug, Clone)]
enum Entry {
    File(usize, usize),
    Symlink(usize, usize),
    PaxSized(usize, usize),
}

/// Entry data that looks like a header bomb wherever it is cut into blocks: if the
/// guard took a data block for a header, it would refuse the archive.
fn bomb_like(size: usize) -> Vec<u8> {
    header(b'L', 1 << 30)
        .iter()
        .copied()
        .cycle()
        .take(size)
        .collect()
}

fn build(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (i, e) in entries.iter().enumerate() {
        let name = |len: usize| format!("{i}{}", "n".repeat(len));
        match e {
            Entry::File(len, size) => {
                let mut h = tar::Header::new_gnu();
                h.set_mode(0o644);
                h.set_size(*size as u64);
                b.append_data(&mut h, name(*len), &bomb_like(*size)[..])
                    .unwrap();
            }
            Entry::Symlink(len, target) => {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, name(*len), "t".repeat(*target))
                    .unwrap();
            }
            Entry::PaxSized(len, size) => {
                let rec = format!("size={size}\n");
                let rec = format!(
                    "{} {rec}",
                    rec.len() + 1 + (rec.len() + 2).to_string().len()
                );
                let mut ph = tar::Header::new_ustar();
                ph.set_path("PaxHeader").unwrap();
                ph.set_entry_type(tar::EntryType::XHeader);
                ph.set_size(rec.len() as u64);
                ph.set_cksum();
                b.append(&ph, rec.as_bytes()).unwrap();
                let mut h = tar::Header::new_ustar();
                h.set_path(name(*len % 90)).unwrap();
                h.set_size(0);
                h.set_cksum();
                b.append(&h, &bomb_like(*size)[..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

type Listing = Vec<(Vec<u8>, Option<Vec<u8>>, Vec<u8>)>;

fn list(r: impl Read) -> io::Result<Listing> {
    let mut out = Vec::new();
    for e in tar::Archive::new(r).entries()? {
        let mut e = e?;
        let mut data = Vec::new();
        e.read_to_end(&mut data)?;
        let link = e.link_name_bytes().map(|l| l.into_owned());
        out.push((e.path_bytes().into_owned(), link, data));
    }
    Ok(out)
}

fn entry() -> impl proptest::strategy::Strategy<Value = Entry> {
    use proptest::prelude::*;
    prop_oneof![
        (0..400usize, 0..1500usize).prop_map(|(l, s)| Entry::File(l, s)),
        (0..300usize, 1..400usize).prop_map(|(l, t)| Entry::Symlink(l, t)),
        (0..90usize, 0..1500usize).prop_map(|(l, s)| Entry::PaxSized(l, s)),
    ]
}

proptest::proptest! {
    /// The guard frames archives exactly as the tar crate does: through it, the crate
    /// reads the same entries, long names, links and data, and nothing is refused.
    #[test]
    fn the_guard_agrees_with_the_tar_crate_on_valid_archives(
        entries in proptest::collection::vec(entry(), 0..12)
    ) {
        let tar = build(&entries);
        let direct = list(&tar[..]).unwrap();
        let guarded = list(HeaderGuard::new(&tar[..])).unwrap();
        proptest::prop_assert_eq!(direct, guarded);
    }
}
