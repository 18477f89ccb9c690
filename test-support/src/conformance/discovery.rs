//! The discovery category: tag listing with `n`/`last` and `Link`, and the catalog.

use reqwest::header::LINK;
use reqwest::{Method, StatusCode};

use super::{Conformance, Failure, list};

impl Conformance {
    /// `discovery/tags`: five tags; `n=2` pages with `Link` where expected (else every tag
    /// at once), following `Link` to the end, and `last`.
    pub async fn tags(&self) -> Result<(), Failure> {
        let (step, repo) = ("discovery/tags", self.repo("tags"));
        let mut want = Vec::new();
        for t in ["t1", "t2", "t3", "t4", "t5"] {
            self.put_manifest(step, &repo, t, t).await?;
            want.push(t.to_string());
        }
        let (all, pages) = self
            .follow(step, &format!("{repo}/tags/list?n=2"), "tags")
            .await?;
        let mut sorted = all.clone();
        sorted.sort();
        check!(step, sorted == want, "tags {all:?}, want {want:?}");
        let paginates = self.flavor.expectations().paginates_tags;
        if paginates {
            check!(step, pages == 3, "{pages} pages of n=2 for 5 tags, want 3");
            check!(step, all == want, "pages out of lexical order: {all:?}");
        } else {
            check!(step, pages == 1, "{pages} pages: n is not ignored any more");
        }
        let (after, _) = self
            .follow(step, &format!("{repo}/tags/list?n=2&last=t2"), "tags")
            .await?;
        let want_after: Vec<String> = if paginates {
            want.iter().skip(2).cloned().collect()
        } else {
            want.clone()
        };
        let mut after_sorted = after.clone();
        after_sorted.sort();
        check!(step, after_sorted == want_after, "after last=t2: {after:?}");

        let url = self.url(step, &format!("{}/tags/list", self.repo("never-pushed")))?;
        let a = self.send(step, Method::GET, &url, &[], None).await?;
        if self.flavor.expectations().unknown_repository_is_404 {
            check!(
                step,
                a.status == StatusCode::NOT_FOUND,
                "unknown repo: {}",
                a.describe()
            );
            check!(
                step,
                a.code().as_deref() == Some("NAME_UNKNOWN"),
                "{}",
                a.describe()
            );
        } else {
            check!(
                step,
                a.status == StatusCode::OK,
                "unknown repo: {}",
                a.describe()
            );
            check!(step, list(&a.body, "tags").is_empty(), "{}", a.describe());
        }
        Ok(())
    }

    /// `discovery/catalog`: `_catalog?n=1` across pages names every repository pushed.
    pub async fn catalog(&self) -> Result<(), Failure> {
        let step = "discovery/catalog";
        let names = [
            self.repo("catalog-a"),
            self.repo("catalog-b"),
            self.repo("catalog-c"),
        ];
        for n in &names {
            self.put_manifest(step, n, "v1", n).await?;
        }
        let (all, pages) = self.follow(step, "_catalog?n=1", "repositories").await?;
        for n in &names {
            check!(step, all.contains(n), "{n} not in the catalog {all:?}");
        }
        check!(
            step,
            pages >= 3,
            "{pages} pages of n=1 for at least 3 repositories"
        );
        Ok(())
    }

    /// GETs `path` and every `Link: <…>; rel="next"` after it (at most 100 pages): the
    /// entries of `field` and the number of pages.
    async fn follow(
        &self,
        step: &str,
        path: &str,
        field: &str,
    ) -> Result<(Vec<String>, usize), Failure> {
        let mut url = self.url(step, path)?;
        let mut out = Vec::new();
        for page in 1..=100 {
            let a = self.send(step, Method::GET, &url, &[], None).await?;
            check!(
                step,
                a.status == StatusCode::OK,
                "GET {url}: {}",
                a.describe()
            );
            out.extend(list(&a.body, field));
            let Some(link) = a.header(LINK) else {
                return Ok((out, page));
            };
            let target = link
                .split_once('<')
                .and_then(|(_, r)| r.split_once('>'))
                .map(|(t, _)| t.to_string());
            check!(
                step,
                link.contains("rel=\"next\""),
                "Link without rel=next: {link}"
            );
            let Some(target) = target else {
                return Err(Failure {
                    step: step.into(),
                    detail: format!("bad Link {link}"),
                });
            };
            url = url.join(&target).map_err(|e| Failure {
                step: step.into(),
                detail: format!("bad Link {link}: {e}"),
            })?;
        }
        Err(Failure {
            step: step.into(),
            detail: "more than 100 pages".into(),
        })
    }
}
