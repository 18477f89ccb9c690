//! A content directory written by a real containerd (Debian's `containerd` package, started
//! on a temporary root by this test) is readable by `LocalStore`: same digests, same bytes;
//! and an ingest containerd left half-done shows up in our `list_statuses` and can be
//! resumed and committed by our writer.
//!
//! If containerd cannot be started this test FAILS with the reason: it never passes
//! silently.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dist_content::{Filter, IngestManager, Ingester, LocalStore, Manager, WriterOpts, read_blob};
use oci_spec::image::{Descriptor, DescriptorBuilder, Digest, MediaType};
use tokio::io::AsyncWriteExt;

fn content(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn digest_of(data: &[u8]) -> Digest {
    dist_content::sha256_of(data)
}

fn desc_of(data: &[u8]) -> Descriptor {
    DescriptorBuilder::default()
        .media_type(MediaType::ImageLayer)
        .digest(digest_of(data))
        .size(data.len() as u64)
        .build()
        .unwrap()
}

/// A containerd daemon on a private root; stopped (and reaped) on drop.
struct Containerd {
    child: Option<Child>,
    dir: PathBuf,
    sock: PathBuf,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        let sock = dir.join("c.sock");
        // GC is pushed far out: blobs ingested through `ctr` carry no gc.root label and
        // would otherwise be collected when ctr's lease ends.
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.gc.v1.scheduler"]
  deletion_threshold = 0
  mutation_threshold = 1000000
  schedule_delay = "1000h"
  startup_delay = "1000h"
"#,
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = sock.display(),
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start containerd ({e}): this test needs Debian's `containerd` \
                     package (containerd and ctr on PATH) and root"
                )
            });
        let mut d = Containerd {
            child: Some(child),
            dir: dir.to_path_buf(),
            sock,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !d.sock.exists() {
            if let Some(status) = d.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("containerd exited at startup ({status}); log:\n{}", d.log());
            }
            if Instant::now() > deadline {
                panic!(
                    "containerd did not open its socket in 30s; log:\n{}",
                    d.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address").arg(&self.sock);
        c
    }

    /// `ctr content ingest` of `data` under `reference`, checked by containerd.
    fn ingest(&self, reference: &str, data: &[u8]) {
        let mut child = self
            .ctr()
            .args(["content", "ingest", "--expected-size"])
            .arg(data.len().to_string())
            .arg("--expected-digest")
            .arg(digest_of(data).to_string())
            .arg(reference)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ctr");
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ctr content ingest {reference}: {}\ncontainerd log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    fn content_root(&self) -> PathBuf {
        self.dir
            .join("root")
            .join("io.containerd.content.v1.content")
    }

    /// SIGTERM, then wait: containerd shuts down cleanly and leaves its store behind.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn local_store_reads_a_content_directory_written_by_containerd() {
    let tmp = tempfile::Builder::new()
        .prefix("ctrd")
        .tempdir_in("/tmp")
        .unwrap();
    let mut daemon = Containerd::start(tmp.path());

    let blobs: Vec<Vec<u8>> = vec![b"x".to_vec(), content(100_000, 1), content(3 << 20, 2)];
    for (i, data) in blobs.iter().enumerate() {
        daemon.ingest(&format!("compat-{i}"), data);
    }

    // A partial ingest: ctr is killed once two of its 1 MiB copy buffers reached containerd
    // (it sends whole buffers; the half buffer after them stays in ctr).
    const MIB: usize = 1 << 20;
    let partial = content(4 * MIB, 3);
    let sent = 2 * MIB;
    let mut ctr = daemon
        .ctr()
        .args([
            "content",
            "ingest",
            "--expected-size",
            &partial.len().to_string(),
            "partial-ref",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ctr");
    let mut stdin = ctr.stdin.take().unwrap();
    stdin.write_all(&partial[..sent + MIB / 2]).unwrap();
    stdin.flush().unwrap();
    let ingest_root = daemon.content_root().join("ingest");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stored: u64 = std::fs::read_dir(&ingest_root)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::metadata(e.path().join("data")).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        if stored >= sent as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "containerd never stored the partial ingest"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ctr.kill().unwrap();
    ctr.wait().unwrap();
    drop(stdin);
    daemon.stop();

    let store = LocalStore::open(daemon.content_root()).unwrap();
    for data in &blobs {
        let desc = desc_of(data);
        let back = read_blob(&store, &desc, 16 << 20).await.unwrap();
        assert!(back == *data, "{}: bytes differ", desc.digest());
        let info = store.info(desc.digest()).await.unwrap();
        assert_eq!(info.size, data.len() as u64);
    }
    let mut walked = Vec::new();
    store
        .walk(&Filter::all(), &mut |info| {
            walked.push(info.digest);
            Ok(())
        })
        .await
        .unwrap();
    let mut want: Vec<Digest> = blobs.iter().map(|b| digest_of(b)).collect();
    want.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
    assert_eq!(walked, want, "walk lists exactly what containerd stored");

    // containerd's metadata layer namespaces refs on disk; ours shows them as they are.
    let statuses = store.list_statuses(&Filter::all()).await.unwrap();
    let st = statuses
        .iter()
        .find(|s| s.reference.ends_with("partial-ref"))
        .unwrap_or_else(|| panic!("containerd's partial ingest not listed: {statuses:?}"));
    assert_eq!(st.offset, sent as u64);
    assert_eq!(st.total, Some(partial.len() as u64));
    let mut w = store
        .writer(WriterOpts::new(st.reference.clone()))
        .await
        .unwrap();
    assert_eq!(w.offset(), sent as u64);
    assert_eq!(w.digest().await.unwrap(), digest_of(&partial[..sent]));
    w.write_all(&partial[sent..]).await.unwrap();
    w.commit(partial.len() as u64, Some(&digest_of(&partial)))
        .await
        .unwrap();
    let back = read_blob(&store, &desc_of(&partial), 16 << 20)
        .await
        .unwrap();
    assert!(back == partial);
}
