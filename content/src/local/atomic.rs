//! Small files replaced atomically: ingest metadata and blob labels.
//!
//! Each file is written to a temporary file with a name unique in this process and across
//! processes (pid and a counter, created with `O_EXCL`), synced, and renamed over the old
//! one; the directory is synced once after the renames. A reader (or a crash) therefore
//! sees the old contents or the new, never a mix, and two updates of one file at the same
//! time cannot write into one temporary file: the later rename simply wins.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces each `(name, contents)` in `dir` atomically (each file on its own).
pub(crate) fn write_files(dir: &Path, files: &[(&str, &[u8])]) -> Result<()> {
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::with_capacity(files.len());
    let result = (|| {
        for (name, contents) in files {
            let tmp = temp_file(dir, name, contents)?;
            staged.push((tmp, dir.join(name)));
        }
        for (tmp, path) in &staged {
            std::fs::rename(tmp, path)
                .map_err(|e| Error::io(format!("rename {}", path.display()), e))?;
        }
        Ok(())
    })();
    if result.is_err() {
        for (tmp, _) in &staged {
            let _ = std::fs::remove_file(tmp);
        }
        return result;
    }
    // Make the renames durable; a failure here loses nothing already visible.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("sync {}", dir.display()), e))
}

/// Writes `contents` to a new, synced temporary file beside `name` in `dir`.
fn temp_file(dir: &Path, name: &str, contents: &[u8]) -> Result<PathBuf> {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let written = (|| -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(Error::io(format!("write {}", tmp.display()), e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_replacements_of_one_file_each_land_whole_and_leave_no_temp_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let contents: Vec<String> = (0..16).map(|i| format!("{i}").repeat(1000 + i)).collect();
        std::thread::scope(|s| {
            for c in &contents {
                let dir = &dir;
                s.spawn(move || write_files(dir, &[("f", c.as_bytes())]).unwrap());
            }
        });
        let got = std::fs::read_to_string(dir.join("f")).unwrap();
        assert!(
            contents.contains(&got),
            "a mix of writes: {} bytes",
            got.len()
        );
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["f"]);
    }
}
