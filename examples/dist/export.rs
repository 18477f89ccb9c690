//! `export`: stored images as an OCI layout tar with Docker's `manifest.json`, to a file
//! or stdout; the library's `archive::export` does the work.

use std::path::PathBuf;
use std::sync::Arc;

use dist::images::ImageStore;
use dist::images::archive::{ExportOptions, PlatformChoice, export as export_archive};

use crate::CmdResult;
use crate::cli::Global;
use crate::registry;
use crate::root::Root;

/// `dist export` arguments.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write every platform an index names (fails when the store lacks one); the default
    /// writes the platforms the store holds, `--platform` one platform
    #[arg(long)]
    pub all_platforms: bool,
    /// Output file, or - for stdout
    pub output: PathBuf,
    /// Image references
    #[arg(required = true)]
    pub references: Vec<String>,
}

/// `export`: writes the images, reports left-out platforms on stderr.
pub async fn export(global: &Global, root: &Root, args: &ExportArgs) -> CmdResult {
    let store = root.images()?;
    let mut images = Vec::with_capacity(args.references.len());
    for reference in &args.references {
        let name = registry::normalize_ref(reference)?;
        let image = store
            .get(&name)
            .await
            .map_err(|e| format!("image {name}: {e}"))?;
        images.push(image.with_limits(crate::fetch::LIMITS));
    }
    let choice = match (args.all_platforms, &global.platform) {
        (true, Some(_)) => return Err("--all-platforms and --platform exclude each other".into()),
        (true, None) => PlatformChoice::All,
        (false, Some(_)) => PlatformChoice::Matching(root.matcher(global)?),
        (false, None) => PlatformChoice::Stored,
    };
    let opts = ExportOptions::default().with_platforms(choice);
    let content = Arc::new(root.content()?);
    let report = if args.output.as_os_str() == "-" {
        let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
        export_archive(content, &images, out, &opts).await?
    } else {
        let file = tokio::fs::File::create(&args.output)
            .await
            .map_err(|e| format!("{}: {e}", args.output.display()))?
            .into_std()
            .await;
        let out = std::io::BufWriter::with_capacity(1 << 20, file);
        match export_archive(content, &images, out, &opts).await {
            Ok(report) => report,
            Err(e) => {
                // No half-written archive left behind for a later reader to trip on.
                let _ = tokio::fs::remove_file(&args.output).await;
                return Err(e.into());
            }
        }
    };
    for skipped in &report.skipped {
        eprintln!(
            "skipped {} {}: not in the store",
            skipped.label,
            skipped.descriptor.digest()
        );
    }
    Ok(())
}
