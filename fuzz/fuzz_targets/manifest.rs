//! Fuzzes manifest and index decoding as a pull meets them (`dist_images::parse_manifest`
//! and `parse_index`, for OCI and Docker media types) and platform strings: nothing may
//! panic, and every child descriptor of what parses can be inspected.
#![no_main]

use dist_images::{media_types, parse_index, parse_manifest, platforms};
use libfuzzer_sys::fuzz_target;
use oci_spec::image::{Descriptor, MediaType};

const MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fn inspect(d: &Descriptor) {
    let _ = media_types::kind(d.media_type());
    let _ = media_types::compression(d.media_type());
    let _ = (d.digest().algorithm(), d.digest().digest(), d.size());
    if let Some(p) = d.platform() {
        let _ = platforms::format(&platforms::normalize(p));
    }
}

fuzz_target!(|data: &[u8]| {
    let digest: oci_spec::image::Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        .parse()
        .expect("digest");
    for mt in MEDIA_TYPES {
        let desc = Descriptor::new(MediaType::from(mt), data.len() as u64, digest.clone());
        if let Ok(m) = parse_manifest(&desc, data) {
            inspect(m.config());
            m.layers().iter().for_each(inspect);
        }
        if let Ok(i) = parse_index(&desc, data) {
            i.manifests().iter().for_each(inspect);
        }
    }
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(p) = platforms::parse(s)
    {
        let _ = platforms::format(&platforms::normalize(&p));
    }
});
