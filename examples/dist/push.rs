//! `push`: the push flow, assembled from the crates: look the image up in the image
//! store, then `dist::remotes::push` (walk the stored graph, blobs, manifests, indexes)
//! with a pusher from the resolver, mount candidates from the blobs' source labels (the
//! destination added to them once pushed), and one progress line per blob.

use std::sync::Arc;

use dist::content::Resource;
use dist::images::ImageStore;
use dist::remotes::{
    DockerResolver, ErrorCode, PushEvent, PushObserver, PushOptions, PushOutcome, PushPlatforms,
    Resolver, ref_key, source_label_handler,
};
use indicatif::DecimalBytes;
use oci_spec::image::Descriptor;

use crate::CmdResult;
use crate::cli::{Global, PushArgs};
use crate::fetch::LIMITS;
use crate::leases;
use crate::progress::Progress;
use crate::registry;
use crate::root::Root;

/// `push`: the image recorded as `local_ref` (default `reference`) to `reference`.
pub async fn push(
    global: &Global,
    root: &Root,
    args: &PushArgs,
    all_platforms: bool,
    reference: &str,
    local_ref: Option<String>,
) -> CmdResult {
    let name = registry::normalize_ref(reference)?;
    let local = registry::normalize_ref(local_ref.as_deref().unwrap_or(reference))?;
    let image = root.images()?.get(&local).await?;
    let platforms = if all_platforms {
        PushPlatforms::All
    } else if global.platform.is_some() {
        PushPlatforms::Matching(root.matcher(global)?)
    } else {
        PushPlatforms::Present
    };
    // The image's graph stays out of `dist gc`'s reach while it is read, even if its
    // name is removed meanwhile: a lease on the root protects what it references.
    let lease = leases::hold(root, "push").await?;
    lease
        .attach(&[Resource::content(image.target.digest())])
        .await?;
    let progress = Arc::new(Progress::new());
    push_target(
        global,
        root,
        args,
        &image.target,
        &name,
        platforms,
        &progress,
    )
    .await?;
    leases::release(lease).await?;
    progress.finish();
    outln!("{}", image.target.digest())?;
    Ok(())
}

/// Pushes `target` from the store to `name`, showing each blob's fate on `progress`.
pub async fn push_target(
    global: &Global,
    root: &Root,
    args: &PushArgs,
    target: &Descriptor,
    name: &str,
    platforms: PushPlatforms,
    progress: &Arc<Progress>,
) -> CmdResult {
    let mut options = registry::options(global, name)
        .await?
        .with_upload_state_dir(root.dir.join("uploads"));
    if let Some(n) = args.chunk_size {
        options = options.with_chunked_upload(n);
    }
    let pusher = DockerResolver::new(options).pusher(name).await?;
    let store = Arc::new(root.content()?);
    let opts = PushOptions::new()
        .with_concurrency(args.concurrency)
        .with_platforms(platforms)
        .with_limits(LIMITS)
        .with_source_labels(store.clone())
        .with_destination_label(Arc::new(source_label_handler(store.clone(), name)?))
        .with_observer(Arc::new(ShowPush(Arc::clone(progress))));
    let partial = matches!(opts.platforms, PushPlatforms::Present);
    match dist::remotes::push(target, store, Arc::from(pusher), &opts).await {
        Ok(()) => {}
        // A partly pulled index names manifests this store lacks; registries that check
        // an index's references refuse it by this code.
        Err(e) if partial && e.code() == Some(&ErrorCode::ManifestBlobUnknown) => {
            return Err(format!(
                "{e} (the index names platforms this store lacks: pull it with \
                 --all-platforms first, or push one platform with --platform)"
            )
            .into());
        }
        Err(e) => return Err(e.into()),
    }
    progress.state(name, "pushed", 0);
    Ok(())
}

/// Shows each pushed descriptor as `pushed`, `mounted` or `exists` (skipped), and counts
/// the uploaded bytes into the closing total.
struct ShowPush(Arc<Progress>);

impl PushObserver for ShowPush {
    fn on_event(&self, event: &PushEvent) {
        match event {
            PushEvent::Done {
                desc,
                outcome,
                bytes,
                elapsed,
            } => {
                let key = ref_key(desc);
                let state = match outcome {
                    PushOutcome::Pushed => {
                        self.0.advance(&key, *bytes, desc.size());
                        format!(
                            "pushed {} in {:.1} s",
                            DecimalBytes(*bytes),
                            elapsed.as_secs_f64()
                        )
                    }
                    PushOutcome::Mounted => "mounted".to_string(),
                    _ => "exists".to_string(),
                };
                self.0.state(&key, &state, desc.size());
            }
            PushEvent::Failed { desc } => self.0.state(&ref_key(desc), "failed", desc.size()),
            _ => {}
        }
    }
}
