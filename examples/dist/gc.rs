//! `dist gc`: collect what no image, root label or live lease references.

use std::time::Duration;

use dist::rootfs::{GcOptions, NamedSnapshotter, RemovedKind, collect_garbage};

use crate::CmdResult;
use crate::root::Root;

/// How `dist gc` was asked to run.
pub struct GcArgs {
    pub dry_run: bool,
    pub lease_grace: Duration,
    pub ingest_max_age: Duration,
}

/// Collects the root's garbage; prints one line per removed object, then the total.
pub async fn gc(root: &Root, args: GcArgs) -> CmdResult {
    let content = root.content()?;
    let snapshotters = root.named_snapshotters()?;
    let named: Vec<NamedSnapshotter<'_>> =
        snapshotters.iter().map(|(n, s)| (*n, s.as_ref())).collect();
    let opts = GcOptions::default()
        .dry_run(args.dry_run)
        .lease_grace(args.lease_grace)
        .ingest_max_age(args.ingest_max_age);
    let report =
        collect_garbage(&content, &content.leases()?, &root.images()?, &named, &opts).await?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for r in &report.removed {
        let kind = match r.kind {
            RemovedKind::Blob => "blob",
            RemovedKind::Ingest => "ingest",
            RemovedKind::Snapshot => "snapshot",
            RemovedKind::Lease => "lease",
            _ => "object",
        };
        let name = match &r.snapshotter {
            Some(s) => format!("{s}/{}", r.name),
            None => r.name.clone(),
        };
        outln!("{verb} {kind} {name} {} bytes", r.size)?;
    }
    outln!(
        "{verb} {} objects, {} bytes freed",
        report.removed.len(),
        report.bytes_freed
    )?;
    Ok(())
}
