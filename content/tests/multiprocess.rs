//! Behaviour across real processes sharing one store directory.
//!
//! This test binary has its own `main`: run normally it executes the tests below; with
//! `DIST_CONTENT_CHILD=<mode>` set it acts as one of the child processes those tests spawn
//! (re-executing `std::env::current_exe()`), so no helper binary ships with the library.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use dist_content::{
    ErrorKind, Filter, IngestManager, Ingester, LocalStore, Manager, Provider, WriterOpts,
    read_blob, write_blob,
};
use oci_spec::image::{Descriptor, DescriptorBuilder, Digest, MediaType};
use tokio::io::AsyncWriteExt;

const CHILD_ENV: &str = "DIST_CONTENT_CHILD";

type TestResult = Result<(), String>;
type TestFn = fn() -> TestResult;

/// A child process that is killed and reaped when dropped, whatever path the test takes.
struct Proc(Option<Child>);

impl Proc {
    fn get(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }

    /// Waits for the child to exit and collects its stdout.
    fn output(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }

    fn kill(&mut self) {
        let child = self.get();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn main() -> ExitCode {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        return child(&mode, &args);
    }
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let tests: &[(&str, TestFn)] = &[
        (
            "second_writer_in_another_process_is_unavailable_at_once",
            second_writer_in_another_process_is_unavailable_at_once,
        ),
        (
            "writer_in_another_process_is_refused_while_we_hold_the_ref",
            writer_in_another_process_is_refused_while_we_hold_the_ref,
        ),
        (
            "resumes_after_writer_process_is_killed",
            resumes_after_writer_process_is_killed,
        ),
        (
            "sixteen_processes_ingesting_the_same_content_make_one_blob",
            sixteen_processes_ingesting_the_same_content_make_one_blob,
        ),
        (
            "ingests_of_one_ref_wait_for_the_holder_then_find_the_blob_committed",
            ingests_of_one_ref_wait_for_the_holder_then_find_the_blob_committed,
        ),
        (
            "ten_processes_writing_one_ref_at_once_all_succeed",
            ten_processes_writing_one_ref_at_once_all_succeed,
        ),
    ];
    let mut failed = 0;
    let mut ran = 0;
    for (name, test) in tests {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        ran += 1;
        let outcome = std::panic::catch_unwind(test);
        match outcome {
            Ok(Ok(())) => println!("test {name} ... ok"),
            Ok(Err(msg)) => {
                failed += 1;
                println!("test {name} ... FAILED\n  {msg}");
            }
            Err(_) => {
                failed += 1;
                println!("test {name} ... FAILED (panicked)");
            }
        }
    }
    println!(
        "\ntest result: {}. {} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        ran - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Deterministic content shared by parent and children.
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

fn spawn_child(mode: &str, args: &[&str]) -> Proc {
    let child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, mode)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Proc(Some(child))
}

/// Reads the child's stdout until a line starting with `prefix`; returns that line.
fn wait_for_line(out: &mut BufReader<ChildStdout>, prefix: &str) -> Result<String, String> {
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("child exited before printing {prefix:?}"));
        }
        if line.starts_with(prefix) {
            return Ok(line.trim().to_owned());
        }
    }
}

// ---------------------------------------------------------------- child modes

fn child(mode: &str, args: &[String]) -> ExitCode {
    let rt = rt();
    let res = rt.block_on(async {
        let store = LocalStore::open(&args[0]).map_err(|e| e.to_string())?;
        match mode {
            "hold" => child_hold(&store, &args[1]).await,
            "try-writer" => child_try_writer(&store, &args[1]).await,
            "slow-writer" => child_slow_writer(&store, &args[1], args[2].parse().unwrap()).await,
            "ingest" => child_ingest(&store, &args[1], args[2].parse().unwrap(), &args[3]).await,
            "write-blob" => child_write_blob(&store, &args[1], args[2].parse().unwrap()).await,
            other => Err(format!("unknown child mode {other}")),
        }
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("child {mode}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Takes the ref, writes a little, says so, and holds it until stdin closes.
async fn child_hold(store: &LocalStore, reference: &str) -> TestResult {
    let mut w = store
        .writer(WriterOpts::new(reference))
        .await
        .map_err(|e| e.to_string())?;
    w.write_all(b"held").await.map_err(|e| e.to_string())?;
    w.flush().await.map_err(|e| e.to_string())?;
    println!("LOCKED");
    std::io::stdout().flush().ok();
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink).ok();
    Ok(())
}

/// Tries to open a writer and prints the error kind it got.
async fn child_try_writer(store: &LocalStore, reference: &str) -> TestResult {
    match store.writer(WriterOpts::new(reference)).await {
        Ok(_) => println!("RESULT ok"),
        Err(e) => println!("RESULT {:?}", e.kind()),
    }
    Ok(())
}

/// Writes content of `size` bytes in flushed 64 KiB pieces, announcing progress; after half
/// it slows down so the parent can kill it mid-write.
async fn child_slow_writer(store: &LocalStore, reference: &str, size: usize) -> TestResult {
    let data = content(size, 7);
    let mut w = store
        .writer(WriterOpts::new(reference).expected(desc_of(&data)))
        .await
        .map_err(|e| e.to_string())?;
    for (i, piece) in data.chunks(64 << 10).enumerate() {
        w.write_all(piece).await.map_err(|e| e.to_string())?;
        w.flush().await.map_err(|e| e.to_string())?;
        if (i + 1) * (64 << 10) >= size / 2 {
            println!("HALF {}", w.offset());
            std::io::stdout().flush().ok();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Err("the parent should have killed us before the end".into())
}

/// Ingests the shared content under its own ref; prints OK or EXISTS.
async fn child_ingest(store: &LocalStore, reference: &str, size: usize, how: &str) -> TestResult {
    let data = content(size, 16);
    let desc = desc_of(&data);
    let opts = WriterOpts::new(reference);
    let opts = if how == "expected" {
        opts.expected(desc.clone())
    } else {
        opts
    };
    let mut w = match store.writer(opts).await {
        Ok(w) => w,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            println!("EXISTS");
            return Ok(());
        }
        Err(e) => return Err(e.to_string()),
    };
    for piece in data.chunks(100_000) {
        w.write_all(piece).await.map_err(|e| e.to_string())?;
    }
    match w.commit(size as u64, Some(desc.digest())).await {
        Ok(()) => println!("OK"),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => println!("EXISTS"),
        Err(e) => return Err(e.to_string()),
    }
    Ok(())
}

/// Announces itself, then writes the shared content under `reference` with `write_blob`
/// (which waits for another holder of the ref); prints OK.
async fn child_write_blob(store: &LocalStore, reference: &str, size: usize) -> TestResult {
    let data = content(size, 16);
    println!("STARTED");
    std::io::stdout().flush().ok();
    write_blob(store, reference, &desc_of(&data), &data[..])
        .await
        .map_err(|e| e.to_string())?;
    println!("OK");
    Ok(())
}

// ---------------------------------------------------------------- tests

fn second_writer_in_another_process_is_unavailable_at_once() -> TestResult {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_str().unwrap();
    let mut holder = spawn_child("hold", &[root, "shared-ref"]);
    let mut out = BufReader::new(holder.get().stdout.take().unwrap());
    wait_for_line(&mut out, "LOCKED")?;
    let store = LocalStore::open(root).unwrap();
    let rt = rt();
    let got = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(10),
            store.writer(WriterOpts::new("shared-ref")),
        )
        .await
    });
    let err = match got {
        Err(_) => return Err("second writer hung instead of failing".into()),
        Ok(Ok(_)) => return Err("second writer got the ref while another process held it".into()),
        Ok(Err(e)) => e,
    };
    if err.kind() != ErrorKind::Unavailable {
        return Err(format!("expected Unavailable, got {err}"));
    }
    let abort = rt.block_on(store.abort("shared-ref"));
    if !matches!(&abort, Err(e) if e.kind() == ErrorKind::Unavailable) {
        return Err(format!("abort of a held ref: {abort:?}"));
    }
    // Once the holder dies, the ref is free and resumes its data.
    holder.kill();
    let w = rt
        .block_on(store.writer(WriterOpts::new("shared-ref")))
        .map_err(|e| format!("writer after the holder died: {e}"))?;
    let resumed = rt.block_on(w.digest()).map_err(|e| e.to_string())?;
    if w.offset() != 4 || resumed != digest_of(b"held") {
        return Err(format!("resumed at {} with {resumed}", w.offset()));
    }
    Ok(())
}

fn writer_in_another_process_is_refused_while_we_hold_the_ref() -> TestResult {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_str().unwrap();
    let store = LocalStore::open(root).unwrap();
    let rt = rt();
    let held = rt.block_on(store.writer(WriterOpts::new("mine"))).unwrap();
    let out = spawn_child("try-writer", &[root, "mine"]).output();
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("RESULT Unavailable") {
        return Err(format!("child while held: {text:?}"));
    }
    drop(held);
    // The drop hands the release to the writer's own thread; a status call in this
    // process waits for it to finish.
    rt.block_on(store.status("mine")).unwrap();
    let out = spawn_child("try-writer", &[root, "mine"]).output();
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("RESULT ok") {
        return Err(format!("child after release: {text:?}"));
    }
    Ok(())
}

fn resumes_after_writer_process_is_killed() -> TestResult {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_str().unwrap();
    let size = 4 << 20;
    let data = content(size, 7);
    let mut writer = spawn_child("slow-writer", &[root, "killed", &size.to_string()]);
    let mut out = BufReader::new(writer.get().stdout.take().unwrap());
    wait_for_line(&mut out, "HALF")?;
    wait_for_line(&mut out, "HALF")?; // let it get a little further, then kill it mid-stream
    writer.kill(); // SIGKILL: no destructor, no flush, no unlock

    let store = LocalStore::open(root).unwrap();
    let rt = rt();
    let statuses = rt.block_on(store.list_statuses(&Filter::all())).unwrap();
    let partial = statuses
        .iter()
        .find(|s| s.reference == "killed")
        .ok_or("list_statuses does not show the partial ingest")?;
    if partial.offset < (size / 2) as u64 || partial.offset >= size as u64 {
        return Err(format!("partial ingest offset {}", partial.offset));
    }
    if partial.total != Some(size as u64) {
        return Err(format!("partial ingest total {:?}", partial.total));
    }
    rt.block_on(async {
        let mut w = store
            .writer(WriterOpts::new("killed").expected(desc_of(&data)))
            .await
            .map_err(|e| e.to_string())?;
        let off = w.offset() as usize;
        if off < partial.offset as usize || off >= size {
            return Err(format!("resumed at {off}, status said {}", partial.offset));
        }
        if w.digest().await.map_err(|e| e.to_string())? != digest_of(&data[..off]) {
            return Err("the resumed digest is not the digest of the stored prefix".into());
        }
        w.write_all(&data[off..]).await.map_err(|e| e.to_string())?;
        w.commit(size as u64, Some(&digest_of(&data)))
            .await
            .map_err(|e| format!("commit after resume: {e}"))?;
        let back = read_blob(&store, &desc_of(&data), size as u64)
            .await
            .map_err(|e| e.to_string())?;
        if back != data {
            return Err("committed blob differs from the content".into());
        }
        Ok(())
    })
}

/// Checks every file under `blobs/sha256` is a complete blob of `data`.
fn check_blob_dir(dir: &Path, data: &[u8], want: &Digest) -> Result<usize, String> {
    let mut count = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    for entry in entries {
        let path: PathBuf = entry.map_err(|e| e.to_string())?.path();
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if bytes.len() != data.len() || digest_of(&bytes) != *want {
            return Err(format!(
                "partial or wrong file under blobs/: {} ({} bytes)",
                path.display(),
                bytes.len()
            ));
        }
        count += 1;
    }
    Ok(count)
}

fn sixteen_processes_ingesting_the_same_content_make_one_blob() -> TestResult {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_str().unwrap();
    let store = LocalStore::open(root).unwrap();
    let size = 8 << 20;
    let data = content(size, 16);
    let want = digest_of(&data);
    let mut children: Vec<Proc> = (0..16)
        .map(|i| {
            let how = if i % 2 == 0 { "expected" } else { "plain" };
            spawn_child(
                "ingest",
                &[root, &format!("ref-{i}"), &size.to_string(), how],
            )
        })
        .collect();
    // Watch blobs/ while they run: a file there must always be the whole blob.
    let blob_dir = Path::new(root).join("blobs").join("sha256");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        check_blob_dir(&blob_dir, &data, &want)?;
        let mut all_done = true;
        for c in children.iter_mut() {
            if c.get().try_wait().unwrap().is_none() {
                all_done = false;
            }
        }
        if all_done {
            break;
        }
        if Instant::now() > deadline {
            return Err("ingesting children did not finish".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let (mut ok, mut exists) = (0, 0);
    for c in children {
        let out = c.output();
        if !out.status.success() {
            return Err(format!("a child failed: {:?}", out.status));
        }
        match String::from_utf8_lossy(&out.stdout).trim() {
            "OK" => ok += 1,
            "EXISTS" => exists += 1,
            other => return Err(format!("child printed {other:?}")),
        }
    }
    if ok < 1 || ok + exists != 16 {
        return Err(format!("{ok} committed, {exists} found it existing"));
    }
    if check_blob_dir(&blob_dir, &data, &want)? != 1 {
        return Err("expected exactly one blob".into());
    }
    let rt = rt();
    let left = rt.block_on(store.list_statuses(&Filter::all())).unwrap();
    if !left.is_empty() {
        return Err(format!("ingests left behind: {left:?}"));
    }
    let ra = rt.block_on(store.reader_at(&desc_of(&data))).unwrap();
    if ra.size() != size as u64 {
        return Err(format!("blob size {}", ra.size()));
    }
    Ok(())
}

fn ingests_of_one_ref_wait_for_the_holder_then_find_the_blob_committed() -> TestResult {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_str().unwrap();
    let store = LocalStore::open(root).unwrap();
    let size = 2 << 20;
    let data = content(size, 16);
    let desc = desc_of(&data);
    let rt = rt();
    // We hold the ref, halfway through, while two other processes ingest the same ref.
    let mut held = rt
        .block_on(store.writer(WriterOpts::new("layer").expected(desc.clone())))
        .unwrap();
    rt.block_on(held.write_all(&data[..size / 2])).unwrap();
    let mut children: Vec<Proc> = (0..2)
        .map(|_| spawn_child("write-blob", &[root, "layer", &size.to_string()]))
        .collect();
    let mut outs = Vec::new();
    for c in &mut children {
        let mut out = BufReader::new(c.get().stdout.take().unwrap());
        wait_for_line(&mut out, "STARTED")?;
        outs.push(out);
    }
    rt.block_on(async {
        held.write_all(&data[size / 2..]).await?;
        held.commit(size as u64, Some(desc.digest())).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
    .map_err(|e| format!("the holder's commit: {e}"))?;
    for (c, mut out) in children.into_iter().zip(outs) {
        wait_for_line(&mut out, "OK")?;
        let status = c.output().status;
        if !status.success() {
            return Err(format!("a waiting ingest failed: {status:?}"));
        }
    }
    let info = rt
        .block_on(store.info(desc.digest()))
        .map_err(|e| e.to_string())?;
    if info.size != size as u64 {
        return Err(format!("blob size {}", info.size));
    }
    let left = rt.block_on(store.list_statuses(&Filter::all())).unwrap();
    if !left.is_empty() {
        return Err(format!("ingests left behind: {left:?}"));
    }
    Ok(())
}

/// The seed's `xargs -P10 dist ingest`: ten processes, one ref, one content.
fn ten_processes_writing_one_ref_at_once_all_succeed() -> TestResult {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_str().unwrap();
    let size = 4 << 20;
    let data = content(size, 16);
    let children: Vec<Proc> = (0..10)
        .map(|_| spawn_child("write-blob", &[root, "one-ref", &size.to_string()]))
        .collect();
    for c in children {
        let out = c.output();
        if !out.status.success() {
            return Err(format!(
                "an ingest of the shared ref failed: {:?}",
                out.status
            ));
        }
        if !String::from_utf8_lossy(&out.stdout).contains("OK") {
            return Err("an ingest ended without saying OK".into());
        }
    }
    let blob_dir = Path::new(root).join("blobs").join("sha256");
    if check_blob_dir(&blob_dir, &data, &digest_of(&data))? != 1 {
        return Err("expected exactly one blob".into());
    }
    let store = LocalStore::open(root).unwrap();
    let left = rt().block_on(store.list_statuses(&Filter::all())).unwrap();
    if !left.is_empty() {
        return Err(format!("ingests left behind: {left:?}"));
    }
    Ok(())
}
