//! Building OCI image layouts on disk for tests: layers, configs, manifests, indexes.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use oci_spec::image::{
    Arch, Descriptor, DescriptorBuilder, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
};

use crate::{Error, Result};

/// An OS/architecture pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, ...
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub arch: String,
    /// `v7`, `v8`, ...
    pub variant: Option<String>,
}

impl Platform {
    /// `os/arch` without a variant.
    pub fn new(os: &str, arch: &str) -> Self {
        Platform {
            os: os.to_string(),
            arch: arch.to_string(),
            variant: None,
        }
    }
}

/// What was built: the root object's descriptor and the blobs below it.
#[derive(Debug, Clone)]
pub struct Built {
    /// The manifest or index descriptor (as tagged in `index.json`).
    pub root: Descriptor,
    /// The raw bytes of the root object.
    pub root_bytes: Vec<u8>,
    /// For an image: its config and layers; for an index: its manifests.
    pub children: Vec<Descriptor>,
}

/// An OCI image layout in a temporary directory.
pub struct OciLayout {
    dir: tempfile::TempDir,
    tagged: Vec<Descriptor>,
}

impl OciLayout {
    /// An empty layout.
    pub fn new() -> Result<Self> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let layout = OciLayout {
            dir,
            tagged: Vec::new(),
        };
        std::fs::create_dir_all(layout.path().join("blobs/sha256"))
            .map_err(|e| Error::io("blobs dir", e))?;
        std::fs::write(
            layout.path().join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .map_err(|e| Error::io("oci-layout", e))?;
        layout.write_index()?;
        Ok(layout)
    }

    /// The layout directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Stores `bytes` as a blob and returns its descriptor with `media_type`.
    pub fn add_blob(&self, media_type: MediaType, bytes: &[u8]) -> Result<Descriptor> {
        let digest = dist_content::sha256_of(bytes);
        let path = self.path().join("blobs/sha256").join(digest.digest());
        std::fs::write(&path, bytes).map_err(|e| Error::io(path.display().to_string(), e))?;
        Ok(Descriptor::new(media_type, bytes.len() as u64, digest))
    }

    /// A gzip-compressed tar of regular files (deterministic: fixed mtimes and owners).
    pub fn tar_gz(files: &[(&str, &[u8])]) -> Result<(Vec<u8>, String)> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(1_700_000_000);
            h.set_cksum();
            tar.append_data(&mut h, name, *data)
                .map_err(|e| Error::io(format!("tar {name}"), e))?;
        }
        let raw = tar.into_inner().map_err(|e| Error::io("tar", e))?;
        let diff_id = dist_content::sha256_of(&raw).to_string();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).map_err(|e| Error::io("gzip", e))?;
        let gz = gz.finish().map_err(|e| Error::io("gzip", e))?;
        Ok((gz, diff_id))
    }

    /// Builds an image with one gzip layer holding `files`, tagged `tag` when given.
    pub fn add_image(
        &mut self,
        tag: Option<&str>,
        platform: &Platform,
        files: &[(&str, &[u8])],
    ) -> Result<Built> {
        let (layer, diff_id) = Self::tar_gz(files)?;
        self.add_image_with_layers(tag, platform, &[(layer, diff_id)])
    }

    /// Builds an image from already-made gzip layers `(bytes, diff_id)`.
    pub fn add_image_with_layers(
        &mut self,
        tag: Option<&str>,
        platform: &Platform,
        layers: &[(Vec<u8>, String)],
    ) -> Result<Built> {
        let mut layer_descs = Vec::new();
        for (bytes, _) in layers {
            layer_descs.push(self.add_blob(MediaType::ImageLayerGzip, bytes)?);
        }
        let rootfs = RootFsBuilder::default()
            .typ("layers")
            .diff_ids(layers.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>())
            .build()
            .map_err(|e| Error::build("rootfs", e))?;
        let config = ImageConfigurationBuilder::default()
            .architecture(Arch::from(platform.arch.as_str()))
            .os(Os::from(platform.os.as_str()))
            .rootfs(rootfs)
            .build()
            .map_err(|e| Error::build("config", e))?;
        let config_bytes = serde_json::to_vec(&config).map_err(|e| Error::build("config", e))?;
        let config_desc = self.add_blob(MediaType::ImageConfig, &config_bytes)?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config_desc.clone())
            .layers(layer_descs.clone())
            .build()
            .map_err(|e| Error::build("manifest", e))?;
        let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::build("manifest", e))?;
        let mut root = self.add_blob(MediaType::ImageManifest, &bytes)?;
        root.set_platform(Some(platform_of(platform)?));
        let mut children = vec![config_desc];
        children.extend(layer_descs);
        if let Some(t) = tag {
            self.tag(t, root.clone())?;
        }
        Ok(Built {
            root,
            root_bytes: bytes,
            children,
        })
    }

    /// Builds one single-layer image per platform and an index over them, tagged `tag`.
    pub fn add_index(&mut self, tag: &str, platforms: &[Platform]) -> Result<Built> {
        let mut manifests = Vec::new();
        for p in platforms {
            let note = format!("built for {}/{}\n", p.os, p.arch);
            let img = self.add_image(None, p, &[("platform.txt", note.as_bytes())])?;
            manifests.push(img.root);
        }
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests.clone())
            .build()
            .map_err(|e| Error::build("index", e))?;
        let bytes = serde_json::to_vec(&index).map_err(|e| Error::build("index", e))?;
        let root = self.add_blob(MediaType::ImageIndex, &bytes)?;
        self.tag(tag, root.clone())?;
        Ok(Built {
            root,
            root_bytes: bytes,
            children: manifests,
        })
    }

    fn tag(&mut self, tag: &str, desc: Descriptor) -> Result<()> {
        let mut d = DescriptorBuilder::default()
            .media_type(desc.media_type().clone())
            .digest(desc.digest().clone())
            .size(desc.size())
            .build()
            .map_err(|e| Error::build("descriptor", e))?;
        d.set_annotations(Some(HashMap::from([(
            "org.opencontainers.image.ref.name".to_string(),
            tag.to_string(),
        )])));
        self.tagged.push(d);
        self.write_index()
    }

    fn write_index(&self) -> Result<()> {
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .manifests(self.tagged.clone())
            .build()
            .map_err(|e| Error::build("index.json", e))?;
        let bytes = serde_json::to_vec(&index).map_err(|e| Error::build("index.json", e))?;
        std::fs::write(self.path().join("index.json"), bytes)
            .map_err(|e| Error::io("index.json", e))
    }
}

fn platform_of(p: &Platform) -> Result<oci_spec::image::Platform> {
    let mut b = PlatformBuilder::default()
        .os(Os::from(p.os.as_str()))
        .architecture(Arch::from(p.arch.as_str()));
    if let Some(v) = &p.variant {
        b = b.variant(v.clone());
    }
    b.build().map_err(|e| Error::build("platform", e))
}

impl std::fmt::Debug for OciLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OciLayout")
            .field("dir", &self.dir.path())
            .field("tagged", &self.tagged.len())
            .finish()
    }
}
