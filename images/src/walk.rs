//! Running a [`Handler`] over a descriptor graph: [`walk`] (sequential, depth-first) and
//! [`dispatch`] (concurrent, with a limit).
//!
//! Both visit each distinct digest once, refuse graphs deeper than [`MAX_DEPTH`], and fail
//! on a cycle (a descriptor that lists one of its own ancestors as a child) instead of
//! looping: content addressing makes cycles impossible in a verified store, but a corrupt
//! or hostile store must not hang the caller.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use oci_spec::image::{Descriptor, Digest};

use crate::{Error, Handler, Result};

/// How many levels below the roots a walk descends before refusing the graph.
///
/// An image is at most index -> manifest -> layer (depth 2); this leaves room for a few
/// levels of nested indexes and refuses anything deeper.
pub const MAX_DEPTH: usize = 6;

/// One descriptor to visit, with the chain of digests above it.
struct Node {
    desc: Descriptor,
    depth: usize,
    parent: Option<Arc<Ancestry>>,
}

/// A parent link: digests from a node up to its root.
struct Ancestry {
    digest: Digest,
    parent: Option<Arc<Ancestry>>,
}

impl Node {
    fn root(desc: Descriptor) -> Self {
        Node {
            desc,
            depth: 0,
            parent: None,
        }
    }

    /// The nodes for `children` of this node, after the depth and cycle checks.
    fn children(&self, children: Vec<Descriptor>) -> Result<Vec<Node>> {
        if children.is_empty() {
            return Ok(Vec::new());
        }
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(Error::Invalid {
                what: self.desc.digest().to_string(),
                reason: format!("descriptor graph nested deeper than {MAX_DEPTH} levels"),
            });
        }
        let link = Arc::new(Ancestry {
            digest: self.desc.digest().clone(),
            parent: self.parent.clone(),
        });
        children
            .into_iter()
            .map(|desc| {
                let mut up = Some(&link);
                while let Some(a) = up {
                    if &a.digest == desc.digest() {
                        return Err(Error::Invalid {
                            what: desc.digest().to_string(),
                            reason: "cycle: descriptor is its own ancestor".into(),
                        });
                    }
                    up = a.parent.as_ref();
                }
                Ok(Node {
                    desc,
                    depth,
                    parent: Some(link.clone()),
                })
            })
            .collect()
    }
}

/// Handles `roots` and their descendants one at a time, depth-first, children in the order
/// the handler returned them (manifest order). Each digest is handled once.
///
/// [`Error::SkipChildren`] from the handler skips that descriptor's children; any other
/// error stops the walk and is returned.
pub async fn walk<H: Handler + ?Sized>(handler: &H, roots: &[Descriptor]) -> Result<()> {
    let mut seen = HashSet::new();
    let mut stack: Vec<Node> = roots.iter().rev().cloned().map(Node::root).collect();
    while let Some(node) = stack.pop() {
        if !seen.insert(node.desc.digest().clone()) {
            continue;
        }
        let children = match handler.handle(&node.desc).await {
            Ok(children) => children,
            Err(Error::SkipChildren) => continue,
            Err(e) => return Err(e),
        };
        stack.extend(node.children(children)?.into_iter().rev());
    }
    Ok(())
}

/// Handles `roots` and their descendants with up to `limit` handler calls in flight at
/// once (`limit` 0 is taken as 1). Each distinct digest is handled once, even when several
/// manifests share it; children are handled only after their parent.
///
/// The first error cancels the calls still in flight (their futures are dropped) and is
/// returned. [`Error::SkipChildren`] skips that descriptor's children.
///
/// The handler futures are polled concurrently on the caller's task (no spawning, so the
/// handler may borrow): I/O overlaps, but a handler with heavy CPU work should move it to
/// `tokio::task::spawn_blocking` itself.
pub async fn dispatch<H: Handler + ?Sized>(
    handler: &H,
    roots: &[Descriptor],
    limit: usize,
) -> Result<()> {
    let limit = limit.max(1);
    let mut seen = HashSet::new();
    let mut queue = VecDeque::new();
    for desc in roots {
        if seen.insert(desc.digest().clone()) {
            queue.push_back(Node::root(desc.clone()));
        }
    }
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < limit {
            let Some(node) = queue.pop_front() else { break };
            running.push(async move {
                let result = handler.handle(&node.desc).await;
                (node, result)
            });
        }
        let Some((node, result)) = running.next().await else {
            return Ok(());
        };
        let children = match result {
            Ok(children) => children,
            Err(Error::SkipChildren) => continue,
            Err(e) => return Err(e),
        };
        for child in node.children(children)? {
            if seen.insert(child.desc.digest().clone()) {
                queue.push_back(child);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HandlerFunc;
    use oci_spec::image::MediaType;
    use std::collections::HashMap;
    use std::str::FromStr;
    use std::sync::Mutex;

    fn d(n: u8) -> Descriptor {
        let digest = Digest::from_str(&format!("sha256:{}", format!("{n:02x}").repeat(32)));
        Descriptor::new(MediaType::ImageLayer, u64::from(n), digest.unwrap())
    }

    /// A graph as a map from node to children, and a handler that logs visits.
    fn graph_handler(
        edges: HashMap<u8, Vec<u8>>,
        log: Arc<Mutex<Vec<u64>>>,
    ) -> impl Handler + 'static {
        let edges = Arc::new(edges);
        HandlerFunc::new(move |desc: Descriptor| {
            let edges = edges.clone();
            let log = log.clone();
            async move {
                log.lock().unwrap().push(desc.size());
                let n = u8::try_from(desc.size()).unwrap();
                Ok(edges.get(&n).into_iter().flatten().map(|&c| d(c)).collect())
            }
        })
    }

    #[tokio::test]
    async fn walk_is_depth_first_in_child_order() {
        let edges = HashMap::from([(1, vec![2, 5]), (2, vec![3, 4]), (5, vec![6])]);
        let log = Arc::new(Mutex::new(Vec::new()));
        walk(&graph_handler(edges, log.clone()), &[d(1)])
            .await
            .unwrap();
        assert_eq!(*log.lock().unwrap(), [1, 2, 3, 4, 5, 6]);
    }

    #[tokio::test]
    async fn walk_refuses_a_self_cycle() {
        let edges = HashMap::from([(1, vec![2]), (2, vec![1])]);
        let log = Arc::new(Mutex::new(Vec::new()));
        let err = walk(&graph_handler(edges, log), &[d(1)]).await.unwrap_err();
        assert!(err.to_string().contains("cycle"), "{err}");
    }

    #[tokio::test]
    async fn dispatch_refuses_a_graph_deeper_than_the_limit() {
        let edges: HashMap<u8, Vec<u8>> = (1..20).map(|n| (n, vec![n + 1])).collect();
        let log = Arc::new(Mutex::new(Vec::new()));
        let err = dispatch(&graph_handler(edges, log.clone()), &[d(1)], 4)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("deeper"), "{err}");
        assert_eq!(log.lock().unwrap().len(), MAX_DEPTH + 1);
    }

    #[tokio::test]
    async fn skip_children_prunes_only_that_branch() {
        let edges = Arc::new(HashMap::from([(1, vec![2, 3]), (2, vec![4]), (3, vec![5])]));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (e, l) = (edges.clone(), log.clone());
        let h = HandlerFunc::new(move |desc: Descriptor| {
            let (e, l) = (e.clone(), l.clone());
            async move {
                l.lock().unwrap().push(desc.size());
                if desc.size() == 2 {
                    return Err(Error::SkipChildren);
                }
                let n = u8::try_from(desc.size()).unwrap();
                Ok(e.get(&n).into_iter().flatten().map(|&c| d(c)).collect())
            }
        });
        dispatch(&h, &[d(1)], 2).await.unwrap();
        let mut got = log.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, [1, 2, 3, 5]);
    }
}
