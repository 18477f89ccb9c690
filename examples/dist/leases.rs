//! Leases for the commands that write into the store, and `dist leases`.
//!
//! A command that creates content takes a lease for its run ([`hold`]), attaches what it
//! is about to create (the fetch chain does it per descriptor), and [`release`]s it once
//! the image record makes everything reachable. If the command dies, the lease stops
//! protecting after `dist gc`'s grace period.

use std::sync::Arc;
use std::time::SystemTime;

use dist::content::{Lease, LeaseOptions, Resource};
use dist::images::Layer;
use dist::rootfs::chain_ids;

use crate::CmdResult;
use crate::root::Root;

/// Takes a lease for the command `what` (a label on the lease, for `dist leases`).
pub async fn hold(root: &Root, what: &str) -> CmdResult<Arc<Lease>> {
    let opts = LeaseOptions::default().with_label("dist.command", what);
    Ok(Arc::new(root.content()?.leases()?.create(opts).await?))
}

/// Deletes the lease: what it protected is reachable from an image record by now.
pub async fn release(lease: Arc<Lease>) -> CmdResult {
    match Arc::try_unwrap(lease) {
        Ok(lease) => lease.release().await?,
        // Someone still has a handle: delete the record; their handle keeps nothing.
        Err(shared) => shared.leases().delete(shared.id()).await?,
    }
    Ok(())
}

/// Attaches the snapshots an unpack of `layers` into `snapshotter` uses or makes (one per
/// ChainID) to `lease`, before the unpack looks at them.
pub async fn attach_chain(lease: &Lease, snapshotter: &str, layers: &[Layer]) -> CmdResult {
    let diff_ids: Vec<_> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let snapshots: Vec<Resource> = chain_ids(&diff_ids)
        .iter()
        .map(|c| Resource::snapshot(snapshotter, c.to_string()))
        .collect();
    Ok(lease.attach(&snapshots).await?)
}

/// `dist leases`: one line per lease: id, state, age, resources, labels.
pub async fn list(root: &Root) -> CmdResult {
    let now = SystemTime::now();
    outln!("ID\tSTATE\tCREATED\tRESOURCES\tLABELS")?;
    for lease in root.content()?.leases()?.list().await? {
        let state = if lease.held { "held" } else { "released" };
        let age = now
            .duration_since(lease.created_at)
            .map(|d| humantime::format_duration(std::time::Duration::from_secs(d.as_secs())))
            .map(|d| format!("{d} ago"))
            .unwrap_or_else(|_| "-".into());
        let mut labels: Vec<String> = lease
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        outln!(
            "{}\t{state}\t{age}\t{}\t{}",
            lease.id,
            lease.resources.len(),
            labels.join(",")
        )?;
    }
    Ok(())
}
