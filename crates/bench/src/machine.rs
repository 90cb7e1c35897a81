//! The machine and software a result was measured on, and where results are written.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_mib: u64,
    pub kernel: String,
    pub rustc: String,
    pub postgres: Option<String>,
    pub git_commit: String,
    pub trunkline_bin: String,
}

fn first_line_of(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

impl Machine {
    pub fn describe(trunkline_bin: &Path, postgres: Option<String>) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        // Untracked files count too: a new benchmark crate is a change to what is measured.
        let dirty = Command::new("git")
            .args(["status", "--porcelain"])
            .output()
            .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
        let commit = first_line_of("git", &["rev-parse", "--short", "HEAD"]);
        Self {
            cpus: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned()),
            memory_mib: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|l| l.trim().strip_suffix("kB"))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .map_or(0, |kib| kib / 1024),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned()),
            rustc: first_line_of("rustc", &["--version"]),
            postgres,
            git_commit: if dirty {
                format!("{commit} (with uncommitted changes)")
            } else {
                commit
            },
            trunkline_bin: trunkline_bin.display().to_string(),
        }
    }
}

/// Write `results` as `<dir>/<date>-<name>.json`, with the machine and settings; the path.
///
/// # Errors
/// The directory or file cannot be written.
pub fn write_raw(
    dir: &Path,
    name: &str,
    machine: &Machine,
    settings: &Value,
    results: &Value,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let now = chrono::Utc::now();
    let path = dir.join(format!("{}-{name}.json", now.format("%Y-%m-%d")));
    let doc = json!({
        "scenario": name,
        "measured_at": now.to_rfc3339(),
        "machine": machine,
        "settings": settings,
        "results": results,
    });
    std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")?;
    Ok(path)
}

/// Progress, on stderr (stdout carries the Markdown tables).
pub fn say(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "bench: {text}");
}

/// Met / missed, for the tables.
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

/// KiB as MiB with one decimal.
#[allow(clippy::cast_precision_loss)] // memory sizes far below 2^53
pub fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}
