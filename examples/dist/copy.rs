//! `copy`: registry to registry through the local store. The source is fetched with the
//! pull chain (fetch, source label, children), so every blob records where it came from;
//! then the push flow sends it on, skipping blobs the destination has and mounting the
//! ones it holds in another repository.

use std::sync::Arc;

use dist::images::{Handlers, Image, children, dispatch};
use dist::remotes::{Fetcher, PushPlatforms, Resolver, fetch_handler, source_label_handler};
use oci_spec::image::Descriptor;

use crate::CmdResult;
use crate::cli::{Global, PushArgs};
use crate::fetch::{FetchJob, LIMITS};
use crate::progress::Progress;
use crate::push::push_target;
use crate::registry;
use crate::root::Root;
use crate::tracker::{CountingFetcher, TrackedFetch};

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
    let progress = Arc::new(Progress::new());
    let (resolved, target) = resolver.resolve(&src).await?;
    progress.state(&src, "resolved", 0);
    let job = FetchJob {
        store: root.content()?,
        fetcher: Arc::from(resolver.fetcher(&resolved).await?),
        matcher: root.matcher(global)?,
        concurrency: args.concurrency,
        progress: Arc::clone(&progress),
        source: resolved,
    };
    let (pushed, platforms) = if global.platform.is_some() {
        job.run(&target).await?;
        let image = Image::new(src, target).with_limits(LIMITS);
        let manifest = image.manifest(&job.store, &job.matcher).await?;
        (manifest.descriptor, PushPlatforms::Present)
    } else {
        fetch_all(&job, &target).await?;
        (target, PushPlatforms::All)
    };
    push_target(global, root, args, &pushed, &dst, platforms, &progress).await?;
    progress.finish();
    outln!("{}", pushed.digest())?;
    Ok(())
}

/// Fetches `target` and everything below it, every platform, labelling each blob with
/// its source repository.
async fn fetch_all(job: &FetchJob, target: &Descriptor) -> CmdResult {
    let store = Arc::new(job.store.clone());
    let counting: Arc<dyn Fetcher> = Arc::new(CountingFetcher {
        inner: Arc::clone(&job.fetcher),
        progress: Arc::clone(&job.progress),
    });
    let fetch = TrackedFetch {
        fetch: fetch_handler(store.clone(), counting),
        progress: Arc::clone(&job.progress),
    };
    let source = source_label_handler(store.clone(), &job.source)?;
    let tree = children(store).with_limits(LIMITS);
    let handler = Handlers::new().push(fetch).push(source).push(tree);
    Ok(dispatch(&handler, std::slice::from_ref(target), job.concurrency).await?)
}
