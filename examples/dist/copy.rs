//! `copy`: registry to registry through the local store. The source is fetched with the
//! pull chain (fetch, source label, children), so every blob records where it came from;
//! then the push flow sends it on, skipping blobs the destination has and mounting the
//! ones it holds in another repository.

use std::sync::Arc;

use dist::images::Image;
use dist::remotes::{PushPlatforms, Resolver};

use crate::CmdResult;
use crate::cli::{Global, PushArgs};
use crate::fetch::{FetchJob, LIMITS};
use crate::leases;
use crate::progress::Progress;
use crate::push::push_target;
use crate::registry;
use crate::root::Root;

/// `copy`: every platform of `src` to `dst`, or with `--platform` that platform's
/// manifest alone (as `skopeo copy` without `--all`).
pub async fn copy(
    global: &Global,
    root: &Root,
    args: &PushArgs,
    src: &str,
    dst: &str,
) -> CmdResult {
    let src = registry::normalize_ref(src)?;
    let dst = registry::normalize_ref(dst)?;
    let resolver = registry::resolver(global, &src).await?;
    let lease = leases::hold(root, "copy").await?;
    let progress = Arc::new(Progress::new());
    let (resolved, target) = resolver.resolve(&src).await?;
    progress.state(&src, "resolved", 0);
    let job = FetchJob {
        store: root.content()?,
        fetcher: Arc::from(resolver.fetcher(&resolved).await?),
        matcher: root.matcher(global)?,
        concurrency: args.concurrency,
        progress: Arc::clone(&progress),
        lease: Some(Arc::clone(&lease)),
        source: registry::registry_name(&resolved),
    };
    let (pushed, platforms) = if global.platform.is_some() {
        job.run(&target).await?;
        let image = Image::new(src, target).with_limits(LIMITS);
        let manifest = image.manifest(&job.store, &job.matcher).await?;
        (manifest.descriptor, PushPlatforms::Present)
    } else {
        job.run_all(&target).await?;
        (target, PushPlatforms::All)
    };
    push_target(global, root, args, &pushed, &dst, platforms, &progress).await?;
    // Nothing names what was copied: the store keeps it until `dist gc`.
    leases::release(lease).await?;
    progress.finish();
    outln!("{}", pushed.digest())?;
    Ok(())
}
