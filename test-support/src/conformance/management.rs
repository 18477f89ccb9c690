//! The management category: manifest (by digest), tag and blob deletes.

use reqwest::{Method, StatusCode};

use super::{Conformance, Failure, OCI_MANIFEST};

impl Conformance {
    /// `management/delete-manifest`: `DELETE manifests/<digest>` is `202`; then the digest
    /// and its tag are `404` `MANIFEST_UNKNOWN`, and deleting it again is `404` too.
    pub async fn delete_manifest(&self) -> Result<(), Failure> {
        let (step, repo) = ("management/delete-manifest", self.repo("delete"));
        let digest = self.put_manifest(step, &repo, "doomed", "doomed").await?;
        let url = self.url(step, &format!("{repo}/manifests/{digest}"))?;
        let a = self.send(step, Method::DELETE, &url, &[], None).await?;
        check!(
            step,
            a.status == StatusCode::ACCEPTED,
            "DELETE: {}",
            a.describe()
        );
        for reference in [digest.as_str(), "doomed"] {
            let a = self.get_manifest(step, &repo, reference).await?;
            check!(
                step,
                a.status == StatusCode::NOT_FOUND,
                "GET {reference}: {}",
                a.describe()
            );
            check!(
                step,
                a.code().as_deref() == Some("MANIFEST_UNKNOWN"),
                "{}",
                a.describe()
            );
        }
        let a = self.send(step, Method::DELETE, &url, &[], None).await?;
        check!(
            step,
            a.status == StatusCode::NOT_FOUND,
            "DELETE again: {}",
            a.describe()
        );
        check!(
            step,
            a.code().as_deref() == Some("MANIFEST_UNKNOWN"),
            "{}",
            a.describe()
        );
        Ok(())
    }

    /// `management/delete-tag`: `DELETE manifests/<tag>` as the registry answers it
    /// ([`Expectations::tag_delete`](super::Expectations::tag_delete)); the tag survives a refusal.
    pub async fn delete_tag(&self) -> Result<(), Failure> {
        let (step, repo) = ("management/delete-tag", self.repo("delete"));
        self.put_manifest(step, &repo, "kept", "kept").await?;
        let url = self.url(step, &format!("{repo}/manifests/kept"))?;
        let headers = [("accept", OCI_MANIFEST.to_string())];
        let a = self
            .send(step, Method::DELETE, &url, &headers, None)
            .await?;
        let (status, code) = self.flavor.expectations().tag_delete;
        check!(
            step,
            a.status.as_u16() == status,
            "want {status}: {}",
            a.describe()
        );
        check!(
            step,
            a.code().as_deref() == Some(code),
            "want {code}: {}",
            a.describe()
        );
        let a = self.get_manifest(step, &repo, "kept").await?;
        check!(
            step,
            a.status == StatusCode::OK,
            "tag gone after a refusal: {}",
            a.describe()
        );
        Ok(())
    }

    /// `management/delete-blob`: `DELETE blobs/<digest>` is `202`, then `HEAD` is `404`;
    /// deleting a missing blob is `404` `BLOB_UNKNOWN`.
    pub async fn delete_blob(&self) -> Result<(), Failure> {
        let (step, repo) = ("management/delete-blob", self.repo("delete"));
        let digest = self.put_blob(step, &repo, b"a blob to delete").await?;
        let url = self.url(step, &format!("{repo}/blobs/{digest}"))?;
        let a = self.send(step, Method::DELETE, &url, &[], None).await?;
        check!(
            step,
            a.status == StatusCode::ACCEPTED,
            "DELETE blob: {}",
            a.describe()
        );
        self.head_blob(step, &repo, &digest, None).await?;
        let a = self.send(step, Method::DELETE, &url, &[], None).await?;
        check!(
            step,
            a.status == StatusCode::NOT_FOUND,
            "DELETE again: {}",
            a.describe()
        );
        check!(
            step,
            a.code().as_deref() == Some("BLOB_UNKNOWN"),
            "{}",
            a.describe()
        );
        Ok(())
    }
}
