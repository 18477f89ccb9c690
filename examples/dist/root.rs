//! Where `dist` keeps its state: `--root`, else `$DIST_ROOT`, else `$XDG_DATA_HOME/dist`,
//! else `~/.local/share/dist`; content, snapshots and images live below it.

use std::path::PathBuf;

use dist::content::LocalStore;
use dist::images::{FsImageStore, PlatformMatcher, platforms};
use dist::rootfs::{NativeSnapshotter, OverlaySnapshotter, Snapshotter};

use crate::CmdResult;
use crate::cli::{Global, SnapshotterChoice, SnapshotterKind};

/// The tool's state directory and the stores in it.
pub struct Root {
    pub dir: PathBuf,
}

impl Root {
    /// Picks the root directory from the flags and environment.
    pub fn new(global: &Global) -> CmdResult<Root> {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let dir = global
            .root
            .clone()
            .or_else(|| env("DIST_ROOT"))
            .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("dist")))
            .or_else(|| env("HOME").map(|h| h.join(".local/share/dist")))
            .ok_or("no root directory: pass --root or set DIST_ROOT or HOME")?;
        Ok(Root { dir })
    }

    /// The content store (`<root>/content`).
    pub fn content(&self) -> CmdResult<LocalStore> {
        Ok(LocalStore::open(self.dir.join("content"))?)
    }
}

impl Root {
    /// The image (name) store (`<root>/images`).
    pub fn images(&self) -> CmdResult<FsImageStore> {
        Ok(FsImageStore::open(self.dir.join("images"))?)
    }

    /// The snapshotter `choice` names: `auto` is overlay when overlay layers can be
    /// written and mounted under `<root>/snapshots` (tried there, on a blocking thread:
    /// a few file operations and a mount), else native.
    pub async fn resolve(&self, choice: SnapshotterChoice) -> CmdResult<SnapshotterKind> {
        let dir = self.dir.join("snapshots");
        let kind = choose(choice, || async move {
            tokio::task::spawn_blocking(move || OverlaySnapshotter::supported(&dir)).await
        })
        .await?;
        tracing::debug!(?choice, ?kind, "snapshotter");
        Ok(kind)
    }

    /// The snapshotter `pull` unpacks into (`<root>/snapshots/<kind>`).
    pub fn snapshotter(&self, kind: SnapshotterKind) -> CmdResult<Box<dyn Snapshotter>> {
        let dir = self.dir.join("snapshots");
        Ok(match kind {
            SnapshotterKind::Native => Box::new(NativeSnapshotter::new(dir.join("native"))?),
            SnapshotterKind::Overlay => Box::new(OverlaySnapshotter::new(dir.join("overlay"))?),
        })
    }

    /// The snapshotters a pull has already used (their directories exist), native first.
    pub fn existing_snapshotters(&self) -> CmdResult<Vec<Box<dyn Snapshotter>>> {
        let mut found = Vec::new();
        for (kind, name) in [
            (SnapshotterKind::Native, "native"),
            (SnapshotterKind::Overlay, "overlay"),
        ] {
            if self.dir.join("snapshots").join(name).is_dir() {
                found.push(self.snapshotter(kind)?);
            }
        }
        Ok(found)
    }

    /// The snapshotters whose directories exist, with the names gc labels and leases call
    /// them by.
    pub fn named_snapshotters(&self) -> CmdResult<Vec<(&'static str, Box<dyn Snapshotter>)>> {
        let mut found = Vec::new();
        for kind in [SnapshotterKind::Native, SnapshotterKind::Overlay] {
            let name = snapshotter_name(kind);
            if self.dir.join("snapshots").join(name).is_dir() {
                found.push((name, self.snapshotter(kind)?));
            }
        }
        Ok(found)
    }

    /// The platform matcher from `--platform`, else this host's.
    pub fn matcher(&self, global: &Global) -> CmdResult<PlatformMatcher> {
        Ok(match &global.platform {
            Some(p) => PlatformMatcher::new(&platforms::parse(p)?),
            None => PlatformMatcher::host(),
        })
    }
}

/// The name of a snapshotter in gc labels and leases (and its directory's name).
pub fn snapshotter_name(kind: SnapshotterKind) -> &'static str {
    match kind {
        SnapshotterKind::Native => "native",
        SnapshotterKind::Overlay => "overlay",
    }
}

/// The snapshotter `choice` means, asking `overlay_works` only for `auto`.
async fn choose<F, E>(
    choice: SnapshotterChoice,
    overlay_works: impl FnOnce() -> F,
) -> Result<SnapshotterKind, E>
where
    F: std::future::Future<Output = Result<bool, E>>,
{
    Ok(match choice {
        SnapshotterChoice::Native => SnapshotterKind::Native,
        SnapshotterChoice::Overlay => SnapshotterKind::Overlay,
        SnapshotterChoice::Auto if overlay_works().await? => SnapshotterKind::Overlay,
        SnapshotterChoice::Auto => SnapshotterKind::Native,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn chosen(choice: SnapshotterChoice, overlay_works: bool) -> SnapshotterKind {
        let asked = std::cell::Cell::new(false);
        let kind = choose(choice, || async {
            asked.set(true);
            Ok::<_, ()>(overlay_works)
        })
        .await
        .unwrap_or(SnapshotterKind::Native);
        assert_eq!(
            asked.get(),
            choice == SnapshotterChoice::Auto,
            "probed only for auto"
        );
        kind
    }

    #[tokio::test]
    async fn auto_falls_back_to_native_where_overlay_does_not_work() {
        use SnapshotterChoice as C;
        use SnapshotterKind as K;
        assert_eq!(chosen(C::Auto, true).await, K::Overlay);
        assert_eq!(chosen(C::Auto, false).await, K::Native);
        for works in [true, false] {
            assert_eq!(chosen(C::Native, works).await, K::Native);
            assert_eq!(chosen(C::Overlay, works).await, K::Overlay);
        }
        assert_eq!(snapshotter_name(K::Native), "native");
        assert_eq!(snapshotter_name(K::Overlay), "overlay");
    }
}
