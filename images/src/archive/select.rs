//! Choosing what of an image an archive carries: the walk shared by export (which
//! platforms go in) and import (which platforms the archive really holds).

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use dist_content::Provider;
use oci_spec::image::Descriptor;

use super::{ANNOTATION_REFERENCE_TYPE, ATTESTATION_MANIFEST};
use crate::media_types::{self, MediaKind};
use crate::{Error, Limits, MAX_DEPTH, Matcher, Result, platforms, read_index, read_manifest};

/// A manifest an index names that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Skipped {
    /// The index entry that was left out.
    pub descriptor: Descriptor,
    /// What it is, for a report: its platform (`linux/arm64`), `attestation`, or
    /// `manifest` when it names neither.
    pub label: String,
}

impl Skipped {
    fn of(desc: &Descriptor) -> Skipped {
        let attestation = desc
            .annotations()
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_REFERENCE_TYPE))
            .is_some_and(|v| v == ATTESTATION_MANIFEST);
        let label = match desc.platform() {
            _ if attestation => "attestation".to_owned(),
            Some(p) => platforms::format(p),
            None => "manifest".to_owned(),
        };
        Skipped {
            descriptor: desc.clone(),
            label,
        }
    }
}

/// Which manifests of an index to take.
pub(super) enum Keep<'a> {
    /// Those whose blobs the provider holds, all of them (skipping the rest).
    Present,
    /// Every one; a missing blob is an error.
    All,
    /// Those for matching platforms whose blobs the provider holds.
    Matching(&'a dyn Matcher),
}

/// What one image contributes.
#[derive(Debug, Default)]
pub(super) struct Selection {
    /// Every blob, each once, parents before children.
    pub(super) blobs: Vec<Descriptor>,
    /// The image manifests kept (not indexes), in index order.
    pub(super) manifests: Vec<Descriptor>,
    /// Index entries left out because their blobs are absent.
    pub(super) skipped: Vec<Skipped>,
}

async fn present<P: Provider + ?Sized>(provider: &P, desc: &Descriptor) -> Result<bool> {
    match provider.reader_at(desc).await {
        Ok(r) => Ok(r.size() == desc.size()),
        Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn missing(desc: &Descriptor) -> Error {
    Error::NotFound(format!("blob {} ({})", desc.digest(), desc.media_type()))
}

/// Selects what of the image rooted at `root` to carry. Fails when the root, or every
/// manifest of a root index, is absent or incomplete.
pub(super) async fn select<P: Provider + ?Sized>(
    provider: &P,
    root: &Descriptor,
    keep: &Keep<'_>,
    limits: &Limits,
) -> Result<Selection> {
    let mut sel = Selection::default();
    let mut seen = HashSet::new();
    match visit(provider, root, keep, limits, 0, &mut sel, &mut seen).await? {
        true => Ok(sel),
        false if sel.skipped.is_empty() => Err(missing(root)),
        false => Err(Error::NotFound(format!(
            "every manifest of {} ({} absent or incomplete)",
            root.digest(),
            sel.skipped
                .iter()
                .map(|s| s.label.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

type Visit<'a> = Pin<Box<dyn Future<Output = Result<bool>> + Send + 'a>>;

/// Adds `desc`'s subtree to `sel` when it is complete (returns `true`); leaves `sel`
/// unchanged and returns `false` when something below is absent.
fn visit<'a, P: Provider + ?Sized>(
    provider: &'a P,
    desc: &'a Descriptor,
    keep: &'a Keep<'a>,
    limits: &'a Limits,
    depth: usize,
    sel: &'a mut Selection,
    seen: &'a mut HashSet<String>,
) -> Visit<'a> {
    Box::pin(async move {
        if depth > MAX_DEPTH {
            return Err(Error::Invalid {
                what: desc.digest().to_string(),
                reason: format!("indexes nested deeper than {MAX_DEPTH}"),
            });
        }
        if !present(provider, desc).await? {
            if matches!(keep, Keep::All) {
                return Err(missing(desc));
            }
            return Ok(false);
        }
        match media_types::kind(desc.media_type()) {
            MediaKind::Manifest => {
                let manifest = read_manifest(provider, desc, limits).await?;
                let mut blobs = vec![desc.clone(), manifest.config().clone()];
                blobs.extend(manifest.layers().iter().cloned());
                for blob in &blobs[1..] {
                    if !present(provider, blob).await? {
                        if matches!(keep, Keep::All) {
                            return Err(missing(blob));
                        }
                        return Ok(false);
                    }
                }
                sel.manifests.push(desc.clone());
                push_blobs(sel, seen, blobs);
                Ok(true)
            }
            MediaKind::Index => {
                let index = read_index(provider, desc, limits).await?;
                let mut any = false;
                let mark = sel.blobs.len();
                push_blobs(sel, seen, vec![desc.clone()]);
                for child in index.manifests() {
                    if !media_types::is_manifest_or_index(child.media_type()) {
                        continue;
                    }
                    if let Keep::Matching(m) = keep {
                        match child.platform() {
                            Some(p) if m.matches(p) => {}
                            // Another platform, or an artifact with none: not chosen.
                            _ => continue,
                        }
                    }
                    if visit(provider, child, keep, limits, depth + 1, sel, seen).await? {
                        any = true;
                    } else {
                        sel.skipped.push(Skipped::of(child));
                    }
                }
                if !any {
                    for d in sel.blobs.drain(mark..) {
                        seen.remove(&d.digest().to_string());
                    }
                }
                Ok(any)
            }
            MediaKind::Schema1Manifest => Err(Error::Invalid {
                what: desc.digest().to_string(),
                reason: "Docker schema1 manifests are not supported".into(),
            }),
            _ => {
                push_blobs(sel, seen, vec![desc.clone()]);
                Ok(true)
            }
        }
    })
}

fn push_blobs(sel: &mut Selection, seen: &mut HashSet<String>, blobs: Vec<Descriptor>) {
    for b in blobs {
        if seen.insert(b.digest().to_string()) {
            sel.blobs.push(b);
        }
    }
}
