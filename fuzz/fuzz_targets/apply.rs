//! Fuzzes `dist_rootfs::apply` with arbitrary bytes (plain, gzip or zstd, as detected):
//! it must never panic and must never create anything next to the root.
//!
//! Run by hand: `cargo +nightly fuzz run apply` from this directory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).expect("root");
    let _ = dist_rootfs::apply(data, &root, &dist_rootfs::ApplyOptions::default());
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("root")], "something escaped the root");
});
