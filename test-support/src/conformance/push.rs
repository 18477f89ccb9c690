//! The push category: uploads (monolithic, chunked, streamed, out of order, resumed),
//! mounts, and manifests.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};

use super::{Answer, Conformance, Failure, OCI_MANIFEST, empty_manifest};
use crate::hostile::sha256;

impl Conformance {
    /// `push/monolithic`: `POST`, then `PUT ?digest=` with the whole blob.
    pub async fn monolithic(&self) -> Result<(), Failure> {
        let (step, repo) = ("push/monolithic", self.repo("push"));
        let blob = b"a monolithic blob".to_vec();
        let digest = self.put_blob(step, &repo, &blob).await?;
        self.head_blob(step, &repo, &digest, Some(blob.len())).await
    }

    /// Checks a `202` chunk answer whose `Range` ends at `end`: the newest `Location`.
    fn accepted_to(&self, step: &str, a: &Answer, end: usize) -> Result<url::Url, Failure> {
        check!(
            step,
            a.status == StatusCode::ACCEPTED,
            "PATCH: {}",
            a.describe()
        );
        let range = a.header("range").map(str::to_string);
        let want = format!("0-{end}");
        check!(
            step,
            range.as_deref() == Some(want.as_str()),
            "Range {range:?}, want {want}"
        );
        self.location(step, a)
    }

    /// `push/chunked`: two `PATCH`es with `Content-Range`, then `PUT ?digest=`.
    pub async fn chunked(&self) -> Result<(), Failure> {
        let (step, repo) = ("push/chunked", self.repo("push"));
        let (one, two) = (b"abcdefghij", b"klmnopqrst");
        let digest = sha256(&[one.as_slice(), two.as_slice()].concat());
        let at = self.open(step, &repo).await?;
        let a = self.patch(step, &at, one, Some(0)).await?;
        let at = self.accepted_to(step, &a, 9)?;
        let a = self.patch(step, &at, two, Some(10)).await?;
        let at = self.accepted_to(step, &a, 19)?;
        self.close(step, &at, &digest, None).await?;
        self.head_blob(step, &repo, &digest, Some(20)).await
    }

    /// `push/streamed`: one `PATCH` without `Content-Range`, then `PUT ?digest=`.
    pub async fn streamed(&self) -> Result<(), Failure> {
        let (step, repo) = ("push/streamed", self.repo("push"));
        let blob = b"streamed without a range";
        let at = self.open(step, &repo).await?;
        let a = self.patch(step, &at, blob, None).await?;
        let at = self.accepted_to(step, &a, blob.len().saturating_sub(1))?;
        let digest = sha256(blob);
        self.close(step, &at, &digest, None).await?;
        self.head_blob(step, &repo, &digest, Some(blob.len())).await
    }

    /// `push/out-of-order-chunk`: a chunk claiming to start at 15 after 10 bytes. Refused
    /// with `416` where expected (then the upload goes on from the session's offset);
    /// 2.8.2 appends it at 10, which here are the right bytes.
    pub async fn out_of_order_chunk(&self) -> Result<(), Failure> {
        let (step, repo) = ("push/out-of-order-chunk", self.repo("push"));
        let (one, two) = (b"0123456789", b"ABCDEFGHIJ");
        let digest = sha256(&[one.as_slice(), two.as_slice()].concat());
        let at = self.open(step, &repo).await?;
        let a = self.patch(step, &at, one, Some(0)).await?;
        let at = self.accepted_to(step, &a, 9)?;
        let a = self.patch(step, &at, two, Some(15)).await?;
        let at = if self.flavor.expectations().out_of_order_chunk_refused {
            check!(
                step,
                a.status == StatusCode::RANGE_NOT_SATISFIABLE,
                "want 416: {}",
                a.describe()
            );
            let a = self.patch(step, &at, two, Some(10)).await?;
            self.accepted_to(step, &a, 19)?
        } else {
            // The range is ignored: the bytes land at the session's offset.
            self.accepted_to(step, &a, 19)?
        };
        self.close(step, &at, &digest, None).await?;
        self.head_blob(step, &repo, &digest, Some(20)).await
    }

    /// `push/resume-from-session`: after one chunk, `GET <location>` says `204` with the
    /// `Range` received; the upload continues from there.
    pub async fn resume_from_session(&self) -> Result<(), Failure> {
        let (step, repo) = ("push/resume-from-session", self.repo("push"));
        let (one, two) = (b"resume-one", b"resume-two");
        let digest = sha256(&[one.as_slice(), two.as_slice()].concat());
        let at = self.open(step, &repo).await?;
        let a = self.patch(step, &at, one, Some(0)).await?;
        let at = self.accepted_to(step, &a, 9)?;
        let s = self.send(step, Method::GET, &at, &[], None).await?;
        check!(
            step,
            s.status == StatusCode::NO_CONTENT,
            "GET session: {}",
            s.describe()
        );
        let range = s.header("range");
        check!(
            step,
            range == Some("0-9"),
            "session Range {range:?}, want 0-9"
        );
        let at = self.location(step, &s)?;
        let a = self.patch(step, &at, two, Some(10)).await?;
        let at = self.accepted_to(step, &a, 19)?;
        self.close(step, &at, &digest, None).await?;
        self.head_blob(step, &repo, &digest, Some(20)).await
    }

    /// `push/mount-*`: with `from` (mounted where expected, else an upload session that
    /// takes the blob), without `from`, and of a blob nobody has (both `202`).
    pub async fn mounts(&self) -> Result<(), Failure> {
        let step = "push/mount-from";
        let (source, target) = (self.repo("mount-source"), self.repo("mount-target"));
        let blob = b"a blob to mount".to_vec();
        let digest = self.put_blob(step, &source, &blob).await?;
        let q = format!("?mount={digest}&from={source}");
        let a = self.post_upload(step, &target, &q).await?;
        if self.flavor.expectations().mounts_across_repositories {
            check!(
                step,
                a.status == StatusCode::CREATED,
                "want 201: {}",
                a.describe()
            );
            let got = a.header("docker-content-digest");
            check!(step, got == Some(digest.as_str()), "mounted digest {got:?}");
        } else {
            check!(
                step,
                a.status == StatusCode::ACCEPTED,
                "want 202: {}",
                a.describe()
            );
            let at = self.location(step, &a)?;
            self.close(step, &at, &digest, Some(blob.clone())).await?;
        }
        self.head_blob(step, &target, &digest, Some(blob.len()))
            .await?;

        let step = "push/mount-without-from";
        let other = self.repo("mount-nofrom");
        let a = self
            .post_upload(step, &other, &format!("?mount={digest}"))
            .await?;
        check!(
            step,
            a.status == StatusCode::ACCEPTED,
            "want 202: {}",
            a.describe()
        );
        self.location(step, &a)?;

        let step = "push/mount-missing-blob";
        let missing = sha256(b"nobody pushed this");
        let q = format!("?mount={missing}&from={source}");
        let a = self.post_upload(step, &other, &q).await?;
        check!(
            step,
            a.status == StatusCode::ACCEPTED,
            "want 202: {}",
            a.describe()
        );
        self.location(step, &a)?;
        Ok(())
    }

    /// `push/manifest-without-layers`: a manifest with `"layers": []` is accepted and
    /// served back byte for byte.
    pub async fn manifest_without_layers(&self) -> Result<(), Failure> {
        let repo = self.repo("manifests");
        self.put_manifest("push/manifest-without-layers", &repo, "empty", "empty")
            .await
            .map(drop)
    }

    /// `push/manifest-blob-unknown`: a manifest naming a config the repository lacks is
    /// refused with `MANIFEST_BLOB_UNKNOWN`.
    pub async fn manifest_blob_unknown(&self) -> Result<(), Failure> {
        let (step, repo) = ("push/manifest-blob-unknown", self.repo("manifests"));
        let manifest = empty_manifest(&sha256(b"missing config"), "x");
        let url = self.url(step, &format!("{repo}/manifests/orphan"))?;
        let headers = [(CONTENT_TYPE.as_str(), OCI_MANIFEST.to_string())];
        let a = self
            .send(step, Method::PUT, &url, &headers, Some(manifest))
            .await?;
        check!(
            step,
            a.status.is_client_error(),
            "want 4xx: {}",
            a.describe()
        );
        let code = a.code();
        check!(
            step,
            code.as_deref() == Some("MANIFEST_BLOB_UNKNOWN"),
            "code {code:?}"
        );
        Ok(())
    }
}
