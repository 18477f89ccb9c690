//! The sweep of one snapshotter: unreached committed snapshots, children before parents,
//! and the active snapshots of extractions whose process is gone.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use super::{GcOptions, GcReport, RemovedKind};
use crate::snapshot::{Info, Kind};
use crate::{EXTRACT_KEY_PREFIX, ErrorKind, Result, Snapshotter};

/// Sweeps `snapshotter` (called `name`), keeping `marked` and `leased` keys, their parents,
/// snapshots committed after `started`, and every view or active snapshot that is not an
/// extraction (their owners remove them). Returns how many snapshots were kept.
pub(crate) async fn sweep(
    name: &str,
    snapshotter: &dyn Snapshotter,
    marked: Option<&HashSet<String>>,
    leased: Option<&HashSet<String>>,
    started: SystemTime,
    opts: &GcOptions,
    report: &mut GcReport,
) -> Result<usize> {
    let mut all: HashMap<String, Info> = HashMap::new();
    snapshotter
        .walk(&mut |info| {
            all.insert(info.name.clone(), info);
            Ok(())
        })
        .await?;
    let is_root = |info: &Info| {
        let named = |set: Option<&HashSet<String>>| set.is_some_and(|s| s.contains(&info.name));
        named(marked)
            || named(leased)
            || info.updated >= started
            || match info.kind {
                Kind::Committed => false,
                // Extractions are the collector's when their process is gone (below).
                Kind::Active => !info.name.starts_with(EXTRACT_KEY_PREFIX),
                _ => true,
            }
    };
    // Keep the roots and every parent of a kept snapshot: linear, each key entered once.
    let mut keep: HashSet<String> = HashSet::new();
    for info in all.values().filter(|i| is_root(i)) {
        let mut next = Some(info.name.clone());
        while let Some(key) = next {
            if !keep.insert(key.clone()) {
                break;
            }
            next = all.get(&key).and_then(|i| i.parent.clone());
        }
    }
    let extractions: Vec<&Info> = all
        .values()
        .filter(|i| i.kind == Kind::Active && !keep.contains(&i.name))
        .collect();
    let mut sizes = HashMap::new();
    for info in &extractions {
        if let Ok(usage) = snapshotter.usage(&info.name).await {
            sizes.insert(info.name.clone(), usage.size);
        }
    }
    let mut removed = 0;
    if !opts.dry_run && !extractions.is_empty() {
        // Only those whose extracting process is gone: a live one holds its snapshot.
        for key in snapshotter.remove_abandoned().await? {
            let size = sizes.get(&key).copied().unwrap_or(0);
            removed += 1;
            report.push(RemovedKind::Snapshot, key, Some(name), size);
        }
    }
    // Children before parents: deepest first.
    let depth = depths(&all);
    let mut doomed: Vec<(usize, &Info)> = all
        .values()
        .filter(|i| i.kind == Kind::Committed && !keep.contains(&i.name))
        .map(|i| (depth.get(i.name.as_str()).copied().unwrap_or(0), i))
        .collect();
    doomed.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
    for (_, info) in doomed {
        let size = snapshotter.usage(&info.name).await.map_or(0, |u| u.size);
        if !opts.dry_run {
            match snapshotter.remove(&info.name).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                // A child appeared (a view someone just took): it is not garbage.
                Err(e) if e.kind() == ErrorKind::FailedPrecondition => {
                    tracing::debug!(key = %info.name, error = %e, "snapshot kept: in use");
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        removed += 1;
        report.push(RemovedKind::Snapshot, info.name.clone(), Some(name), size);
    }
    Ok(all.len().saturating_sub(removed))
}

/// How many parents each snapshot has, each computed once (a walk up to the first
/// snapshot already known): linear in the number of snapshots. A parent missing from
/// `all`, or a cycle in corrupt records, ends a walk.
fn depths(all: &HashMap<String, Info>) -> HashMap<&str, usize> {
    let mut known: HashMap<&str, usize> = HashMap::with_capacity(all.len());
    for start in all.keys() {
        let mut path: Vec<&str> = Vec::new();
        let mut on_path: HashSet<&str> = HashSet::new();
        let mut next = Some(start.as_str());
        let mut base = 0;
        while let Some(key) = next {
            if let Some(d) = known.get(key) {
                base = d + 1;
                break;
            }
            let Some(info) = all.get(key) else { break };
            if !on_path.insert(key) {
                break;
            }
            path.push(info.name.as_str());
            next = info.parent.as_deref();
        }
        for (i, key) in path.iter().rev().enumerate() {
            known.insert(key, base + i);
        }
    }
    known
}
