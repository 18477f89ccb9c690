//! Prints the tree of descriptors of an image held in a dist store.
//!
//! `cargo run --example walk -- <store-root> <digest-or-image-name>`: `<store-root>` is the
//! `dist` root (blobs in `<root>/content`, image names in `<root>/images`); a digest names
//! a manifest or index in the content store, anything else an image name.

use std::path::Path;

use dist_content::{ErrorKind, LocalStore, Manager};
use dist_images::{FsImageStore, ImageStore, MAX_DEPTH, MAX_MANIFEST_SIZE, children_of};
use dist_images::{media_types, platforms::format as fmt_platform};
use oci_spec::image::{Descriptor, Digest, MediaType};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, what] = args.as_slice() else {
        return Err("usage: walk <store-root> <digest-or-image-name>".into());
    };
    let root = Path::new(root);
    let content = LocalStore::open(root.join("content"))?;
    let images = FsImageStore::open(root.join("images"))?;
    let target = match what.parse::<Digest>() {
        Ok(digest) => describe(&content, digest).await?,
        Err(_) => images.get(what).await?.target,
    };
    print_tree(&content, &target, 0).await
}

/// A bare digest has no media type: take the one the document declares, else its shape.
async fn describe(content: &LocalStore, digest: Digest) -> BoxResult<Descriptor> {
    let size = content.info(&digest).await?.size;
    let mut desc = Descriptor::new(MediaType::Other("unknown".into()), size, digest);
    let bytes = dist_content::read_blob(content, &desc, MAX_MANIFEST_SIZE).await?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes)?;
    let media_type = match doc.get("mediaType").and_then(|m| m.as_str()) {
        Some(m) => m,
        None if doc.get("manifests").is_some() => media_types::OCI_INDEX,
        None => media_types::OCI_MANIFEST,
    };
    desc.set_media_type(MediaType::from(media_type));
    Ok(desc)
}

/// Prints `desc` indented by `depth`, then its children; absent blobs are marked.
async fn print_tree(content: &LocalStore, desc: &Descriptor, depth: usize) -> BoxResult<()> {
    let platform = desc.platform().as_ref().map(fmt_platform);
    let present = match content.info(desc.digest()).await {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => return Err(e.into()),
    };
    let (d, mt, size) = (desc.digest(), desc.media_type(), desc.size());
    let note = platform.map(|p| format!(" [{p}]")).unwrap_or_default();
    let missing = if present { "" } else { " (missing)" };
    println!(
        "{:w$}{mt} {d} {size} bytes{note}{missing}",
        "",
        w = depth * 2
    );
    if depth >= MAX_DEPTH {
        return Err(format!("{d}: nested deeper than {MAX_DEPTH}").into());
    }
    let children = if present {
        children_of(content, desc).await?
    } else {
        vec![]
    };
    for child in children {
        Box::pin(print_tree(content, &child, depth + 1)).await?;
    }
    Ok(())
}
