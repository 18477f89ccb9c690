//! The descriptor [`Handler`]: one step of walking an image graph.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use oci_spec::image::Descriptor;

use crate::Result;

/// Handles one descriptor and returns its children (the descriptors to visit next).
///
/// Return [`Error::SkipChildren`](crate::Error::SkipChildren) to stop descending below
/// this descriptor without failing the walk.
///
/// The quickest way to write one is [`HandlerFunc`] around an async closure:
///
/// ```
/// use dist_images::{Handler, HandlerFunc};
/// use oci_spec::image::{Descriptor, Digest, MediaType};
/// use std::str::FromStr;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dist_images::Result<()> {
/// // Logs every descriptor and reports no children.
/// let log = HandlerFunc::new(|desc: Descriptor| async move {
///     println!("{} {}", desc.media_type(), desc.digest());
///     Ok(Vec::new())
/// });
/// let digest = Digest::from_str(
///     "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
/// )
/// .map_err(|e| dist_images::Error::other(dist_images::ErrorKind::InvalidArgument, e))?;
/// let children = log
///     .handle(&Descriptor::new(MediaType::ImageLayer, 0, digest))
///     .await?;
/// assert!(children.is_empty());
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Handler: Send + Sync {
    /// Handles `desc`; the returned descriptors are visited after it.
    async fn handle(&self, desc: &Descriptor) -> Result<Vec<Descriptor>>;
}

#[async_trait]
impl<H: Handler + ?Sized> Handler for &H {
    async fn handle(&self, desc: &Descriptor) -> Result<Vec<Descriptor>> {
        (**self).handle(desc).await
    }
}

#[async_trait]
impl<H: Handler + ?Sized> Handler for Box<H> {
    async fn handle(&self, desc: &Descriptor) -> Result<Vec<Descriptor>> {
        (**self).handle(desc).await
    }
}

#[async_trait]
impl<H: Handler + ?Sized> Handler for Arc<H> {
    async fn handle(&self, desc: &Descriptor) -> Result<Vec<Descriptor>> {
        (**self).handle(desc).await
    }
}

/// A [`Handler`] made from an async closure that takes the descriptor by value; see
/// [`Handler`] for an example.
pub struct HandlerFunc<F> {
    f: F,
}

impl<F, Fut> HandlerFunc<F>
where
    F: Fn(Descriptor) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Vec<Descriptor>>> + Send,
{
    /// Wraps `f`; it is called once per handled descriptor.
    pub fn new(f: F) -> Self {
        HandlerFunc { f }
    }
}

impl<F> fmt::Debug for HandlerFunc<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandlerFunc")
    }
}

#[async_trait]
impl<F, Fut> Handler for HandlerFunc<F>
where
    F: Fn(Descriptor) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Vec<Descriptor>>> + Send,
{
    async fn handle(&self, desc: &Descriptor) -> Result<Vec<Descriptor>> {
        (self.f)(desc.clone()).await
    }
}

/// Several handlers run in order on each descriptor; their children are concatenated.
///
/// The first error (including [`Error::SkipChildren`](crate::Error::SkipChildren)) stops
/// the remaining handlers and is returned, as in containerd's `Handlers`.
#[derive(Default)]
pub struct Handlers {
    handlers: Vec<Box<dyn Handler>>,
}

impl Handlers {
    /// An empty list; add handlers with [`push`](Handlers::push).
    pub fn new() -> Self {
        Handlers::default()
    }

    /// Appends a handler to run after the ones already added.
    pub fn push(mut self, handler: impl Handler + 'static) -> Self {
        self.handlers.push(Box::new(handler));
        self
    }
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handlers")
            .field("len", &self.handlers.len())
            .finish()
    }
}

impl From<Vec<Box<dyn Handler>>> for Handlers {
    fn from(handlers: Vec<Box<dyn Handler>>) -> Self {
        Handlers { handlers }
    }
}

#[async_trait]
impl Handler for Handlers {
    async fn handle(&self, desc: &Descriptor) -> Result<Vec<Descriptor>> {
        let mut children = Vec::new();
        for handler in &self.handlers {
            children.extend(handler.handle(desc).await?);
        }
        Ok(children)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use oci_spec::image::{Digest, MediaType};
    use std::str::FromStr;

    fn desc(n: u8) -> Descriptor {
        let hex = format!("{n:02x}").repeat(32);
        let digest = Digest::from_str(&format!("sha256:{hex}")).unwrap();
        Descriptor::new(MediaType::ImageLayer, u64::from(n), digest)
    }

    #[tokio::test]
    async fn handlers_concatenate_children_in_order() {
        let h = Handlers::new()
            .push(HandlerFunc::new(|_| async { Ok(vec![desc(1)]) }))
            .push(HandlerFunc::new(|_| async { Ok(vec![desc(2), desc(3)]) }));
        let got: Vec<u64> = h
            .handle(&desc(0))
            .await
            .unwrap()
            .iter()
            .map(|d| d.size())
            .collect();
        assert_eq!(got, [1, 2, 3]);
    }

    #[tokio::test]
    async fn handlers_stop_at_first_error() {
        let h = Handlers::new()
            .push(HandlerFunc::new(|_| async { Err(Error::SkipChildren) }))
            .push(HandlerFunc::new(|_| async {
                Err(Error::NotFound("must not run".into()))
            }));
        assert!(matches!(h.handle(&desc(0)).await, Err(Error::SkipChildren)));
    }

    #[tokio::test]
    async fn arc_and_box_of_a_handler_are_handlers() {
        let f = HandlerFunc::new(|d: Descriptor| async move { Ok(vec![d]) });
        let arc: Arc<dyn Handler> = Arc::new(f);
        let boxed: Box<dyn Handler> = Box::new(arc.clone());
        assert_eq!(boxed.handle(&desc(7)).await.unwrap(), vec![desc(7)]);
    }
}
