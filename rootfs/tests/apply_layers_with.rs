//! `apply_layers_with`: the options reach every layer's apply.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use common::Layer as TarLayer;
use dist_content::LocalStore;
use dist_rootfs::{
    ApplyOptions, IdMap, Layer, Mount, NativeSnapshotter, Snapshotter, apply_layers_with,
};
use oci_spec::image::{DescriptorBuilder, MediaType};

/// Stores `tar` uncompressed (its digest is then its DiffID) and returns the layer.
async fn store_layer(store: &LocalStore, tar: &[u8]) -> Layer {
    let digest = dist_content::sha256_of(tar);
    let blob = DescriptorBuilder::default()
        .media_type(MediaType::ImageLayer)
        .digest(digest.clone())
        .size(tar.len() as u64)
        .build()
        .unwrap();
    dist_content::write_blob(store, "layer", &blob, tar)
        .await
        .unwrap();
    Layer {
        diff_id: digest,
        blob,
    }
}

fn bind_source(m: &[Mount]) -> PathBuf {
    m.iter()
        .find(|m| m.kind == "bind")
        .map(|m| m.source.clone())
        .unwrap()
}

#[tokio::test]
async fn id_mapping_is_applied_to_every_layer() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: chown to mapped ids needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalStore::open(tmp.path().join("content")).unwrap();
    let sn = NativeSnapshotter::new(tmp.path().join("snapshots")).unwrap();
    let mut base = TarLayer::new();
    base.dir("etc", 0o755).file("etc/base", b"root's", 0o644);
    let mut top = TarLayer::new();
    top.uid = 1000;
    top.gid = 1000;
    top.file("etc/user", b"a user's", 0o644);
    let layers = vec![
        store_layer(&store, &base.build()).await,
        store_layer(&store, &top.build()).await,
    ];
    let options = ApplyOptions::default().id_map(IdMap::shift(100_000, 65_536));
    let chain = apply_layers_with(&layers, &sn, &store, options)
        .await
        .unwrap();
    let view = sn.view("look", Some(chain.as_ref())).await.unwrap();
    let root = bind_source(&view);
    let base = std::fs::metadata(root.join("etc/base")).unwrap();
    assert_eq!((base.uid(), base.gid()), (100_000, 100_000));
    let user = std::fs::metadata(root.join("etc/user")).unwrap();
    assert_eq!((user.uid(), user.gid()), (101_000, 101_000));
}
