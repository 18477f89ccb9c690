//! Apply one layer onto a directory with `dist-rootfs`, then print its DiffID.
//!
//! ```sh
//! cargo run --example apply -- layer.tar.gz /tmp/rootfs   # a layer file (tar, gzip or zstd)
//! cargo run --example apply -- --demo /tmp/rootfs         # a small layer built here
//! ```
//!
//! Every entry is resolved inside the directory as if it were `/`: a layer cannot write,
//! change or read anything outside it, whatever its paths, symlinks or hardlinks say.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::PathBuf;

use dist::rootfs::{ApplyOptions, apply};
use flate2::{Compression, write::GzEncoder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (source, dir) = match (args.next(), args.next()) {
        (Some(source), Some(dir)) => (source, PathBuf::from(dir)),
        _ => return Err("usage: apply <layer-file | --demo> <dir>".into()),
    };
    let layer: Box<dyn Read> = if source == "--demo" {
        Box::new(Cursor::new(demo_layer()?))
    } else {
        Box::new(File::open(&source).map_err(|e| format!("{source}: {e}"))?)
    };
    std::fs::create_dir_all(&dir)?;
    let applied = apply(layer, &dir, &ApplyOptions::default())?;
    println!("{} ({} bytes uncompressed)", applied.diff_id, applied.size);
    Ok(())
}

/// A gzip layer with a directory, a file, and a symlink that points far outside the root:
/// applied, it resolves inside the root like every other path.
fn demo_layer() -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    tar.append_data(&mut dir, "etc/", std::io::empty())?;
    let body = b"hello from a layer\n";
    let mut file = tar::Header::new_gnu();
    file.set_mode(0o644);
    file.set_size(body.len() as u64);
    tar.append_data(&mut file, "etc/motd", &body[..])?;
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    tar.append_link(&mut link, "escape", "../../../../etc")?;
    tar.into_inner()?.finish()
}
