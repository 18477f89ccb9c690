//! `tags`: a repository's tags, one per line, across every page the registry serves.

use dist::remotes::ListOptions;

use crate::CmdResult;
use crate::cli::Global;
use crate::registry;

/// Prints every tag of `repository` (`redis`, `host:5000/team/app`), following the
/// registry's `Link` pagination, asking for `page_size` tags per page when given.
pub async fn tags(global: &Global, repository: &str, page_size: Option<u32>) -> CmdResult {
    let name = dist::reference::normalize(repository)
        .map_err(|e| format!("invalid repository {repository:?}: {e}"))?
        .name();
    let resolver = registry::resolver(global, &name).await?;
    let repo = resolver.registry_repository(&name).await?;
    let mut options = ListOptions::default();
    if let Some(n) = page_size {
        options = options.with_page_size(n);
    }
    for tag in repo.tags(&options).await? {
        outln!("{tag}")?;
    }
    Ok(())
}
