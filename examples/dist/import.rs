//! `import`: an OCI layout tar or a `docker save` archive into the store, from a file or
//! stdin, through the library's `archive::import`; `--unpack` then applies each image's
//! layers into the snapshotter as `pull` does.

use std::path::PathBuf;
use std::sync::Arc;

use dist::images::archive::{ImportOptions, import as import_archive};
use dist::images::gc::label_snapshot;
use dist::images::label_stored_graph;
use dist::rootfs::apply_layers;

use crate::CmdResult;
use crate::cli::{Global, SnapshotterChoice};
use crate::leases;
use crate::root::Root;

/// `dist import` arguments.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Name to record for a single-image archive (instead of the names it carries)
    #[arg(long, value_name = "REF")]
    pub name: Option<String>,
    /// Unpack each imported image into the snapshotter, as pull does
    #[arg(long)]
    pub unpack: bool,
    /// Snapshotter to unpack into
    #[arg(long, value_enum, default_value_t = SnapshotterChoice::Auto)]
    pub snapshotter: SnapshotterChoice,
    /// Archive file, or - for stdin
    pub input: PathBuf,
}

/// `import`: prints each recorded name (with its top ChainID when unpacked); reports
/// skipped platforms and unnamed images on stderr.
pub async fn import(global: &Global, root: &Root, args: &ImportArgs) -> CmdResult {
    let store = Arc::new(root.content()?);
    let images = root.images()?;
    let lease = leases::hold(root, "import").await?;
    let mut opts = ImportOptions::default().with_lease(Arc::clone(&lease));
    opts.limits = crate::fetch::LIMITS;
    if let Some(name) = &args.name {
        opts = opts.with_name(name.clone());
    }
    let report = if args.input.as_os_str() == "-" {
        let input = std::io::BufReader::with_capacity(1 << 20, std::io::stdin());
        import_archive(Arc::clone(&store), &images, input, &opts).await?
    } else {
        let file = tokio::fs::File::open(&args.input)
            .await
            .map_err(|e| format!("{}: {e}", args.input.display()))?
            .into_std()
            .await;
        let input = std::io::BufReader::with_capacity(1 << 20, file);
        import_archive(Arc::clone(&store), &images, input, &opts).await?
    };
    // containerd's GC references on what arrived, before the lease stops protecting it.
    let roots: Vec<_> = report
        .images
        .iter()
        .map(|i| i.target.clone())
        .chain(report.unnamed.iter().cloned())
        .collect();
    label_stored_graph(store.as_ref(), &roots, &crate::fetch::LIMITS).await?;
    for skipped in &report.skipped {
        eprintln!(
            "skipped {} {}: not in the archive",
            skipped.label,
            skipped.descriptor.digest()
        );
    }
    for desc in &report.unnamed {
        eprintln!(
            "imported {} without a name (the archive names none): pass --name to record it",
            desc.digest()
        );
    }
    let kind = match args.unpack {
        true => root.resolve(args.snapshotter).await?,
        false => crate::cli::SnapshotterKind::Native, // unused
    };
    let snapshotter = match args.unpack {
        true => Some(root.snapshotter(kind)?),
        false => None,
    };
    let snapshotter_name = crate::root::snapshotter_name(kind);
    let matcher = root.matcher(global)?;
    for image in &report.images {
        match &snapshotter {
            Some(s) => {
                let layers = image.layers(store.as_ref(), &matcher).await?;
                leases::attach_chain(&lease, snapshotter_name, &layers).await?;
                let top = apply_layers(&layers, s.as_ref(), store.as_ref()).await?;
                let config = image.config(store.as_ref(), &matcher).await?;
                label_snapshot(
                    store.as_ref(),
                    config.digest(),
                    snapshotter_name,
                    top.as_ref(),
                )
                .await?;
                outln!("{} {top}", image.name)?;
            }
            None => outln!("{}", image.name)?,
        }
    }
    leases::release(lease).await?;
    Ok(())
}
