//! Pull progress on stderr, one line per descriptor as in the seed's `dist fetch`: bars
//! (indicatif) when stderr is a terminal, plain state-change lines otherwise.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{DecimalBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress of every descriptor of one pull.
pub struct Progress {
    started: Instant,
    transferred: AtomicU64,
    /// Bytes received per descriptor key in this run.
    received: Mutex<HashMap<String, u64>>,
    /// Keys whose bar shows "stalled" or "retrying" until their next bytes arrive.
    interrupted: Mutex<HashSet<String>>,
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
}

impl Progress {
    /// Bars on a terminal, plain lines otherwise.
    pub fn new() -> Self {
        let bars = std::io::stderr().is_terminal().then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            (multi, Mutex::new(HashMap::new()))
        });
        Progress {
            started: Instant::now(),
            transferred: AtomicU64::new(0),
            received: Mutex::new(HashMap::new()),
            interrupted: Mutex::new(HashSet::new()),
            bars,
        }
    }

    fn bar(&self, key: &str, total: u64) -> Option<ProgressBar> {
        let (multi, bars) = self.bars.as_ref()?;
        let mut bars = bars.lock().ok()?;
        let bar = bars.entry(key.to_string()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(total));
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix}: {msg:11} {bar:30} {bytes}/{total_bytes} ({bytes_per_sec})",
            ) {
                bar.set_style(style);
            }
            bar.set_prefix(short(key));
            bar
        });
        Some(bar.clone())
    }

    fn line(&self, key: &str, state: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{key}: {state}");
    }

    /// Announces a state of `key` (resolved, unpacking, failed...).
    pub fn state(&self, key: &str, state: &str, total: u64) {
        match self.bar(key, total) {
            Some(bar) => {
                bar.set_message(state.to_string());
                if state != "downloading" {
                    bar.finish();
                }
            }
            None => self.line(key, state),
        }
    }

    /// A download of `key` starts at `offset` (non-zero when resuming).
    pub fn start(&self, key: &str, offset: u64, total: u64) {
        match self.bar(key, total) {
            Some(bar) => {
                bar.set_position(offset);
                bar.reset_eta();
                bar.set_message("downloading");
            }
            None if offset > 0 => self.line(key, &format!("resuming at {}", DecimalBytes(offset))),
            None => self.line(key, "downloading"),
        }
    }

    /// Records `n` more bytes transferred for `key`.
    pub fn advance(&self, key: &str, n: u64, total: u64) {
        self.transferred.fetch_add(n, Ordering::Relaxed);
        if let Ok(mut r) = self.received.lock() {
            *r.entry(key.to_string()).or_default() += n;
        }
        let resumed = self
            .interrupted
            .lock()
            .is_ok_and(|mut keys| keys.remove(key));
        if let Some(bar) = self.bar(key, total) {
            if resumed {
                bar.set_message("downloading");
            }
            bar.inc(n);
        }
    }

    /// `key` stalled (`what` says how) or is being retried: the bar says so until bytes
    /// flow again; plain output gets a line.
    pub fn interrupted(&self, key: &str, state: &str, what: &str, total: u64) {
        if let Ok(mut keys) = self.interrupted.lock() {
            keys.insert(key.to_string());
        }
        match self.bar(key, total) {
            Some(bar) => bar.set_message(state.to_string()),
            None => self.line(key, &format!("{state} ({what})")),
        }
    }

    /// `key` is in the store: downloaded in `elapsed`, or there already.
    pub fn done(&self, key: &str, total: u64, elapsed: Duration) {
        let got = self
            .received
            .lock()
            .ok()
            .and_then(|r| r.get(key).copied())
            .unwrap_or(0);
        let state = if got == 0 {
            "exists".to_string()
        } else {
            let secs = elapsed.as_secs_f64().max(1e-6);
            format!(
                "done {} in {:.1} s ({}/s)",
                DecimalBytes(got),
                secs,
                DecimalBytes((got as f64 / secs) as u64)
            )
        };
        match self.bar(key, total) {
            Some(bar) => {
                bar.set_position(total);
                bar.finish_with_message(if got == 0 { "exists" } else { "done" });
            }
            None => self.line(key, &state),
        }
    }

    /// Bytes transferred over the network so far.
    pub fn transferred(&self) -> u64 {
        self.transferred.load(Ordering::Relaxed)
    }

    /// Prints the closing `elapsed: ... total: ... (rate)` line.
    pub fn finish(&self) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let total = self.transferred();
        let rate = if elapsed > 0.0 {
            total as f64 / elapsed
        } else {
            0.0
        };
        let _ = writeln!(
            std::io::stderr().lock(),
            "elapsed: {elapsed:.1} s total: {} ({}/s)",
            DecimalBytes(total),
            DecimalBytes(rate as u64)
        );
    }
}

/// `layer-sha256:0123456789ab…` for bars, which have little room: twelve characters of
/// whatever follows the algorithm's colon.
fn short(key: &str) -> String {
    match key.find(':') {
        Some(i) if key.len() > i + 13 => key.get(..i + 13).unwrap_or(key).to_string(),
        _ => key.to_string(),
    }
}
