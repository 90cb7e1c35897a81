//! Watching things while a measurement runs: the emulators' request logs (when each
//! upstream request arrived and was answered), a process's resident memory, and `perf`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use trunkline_testkit::livekit::LiveKitEmulator;
use trunkline_testkit::twilio::TwilioEmulator;

use crate::instance::memory_of;

/// When the sampler first saw a request in an emulator's log, and first saw it answered.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub arrived: Instant,
    pub answered: Option<Instant>,
}

/// The request logs' entries (by sequence number) with the times they were seen.
#[derive(Debug, Default)]
pub struct Timeline {
    pub twilio: BTreeMap<u64, Seen>,
    pub livekit: BTreeMap<u64, Seen>,
}

/// Polls both emulators' request logs every `every` on its own thread. The emulators
/// record a request when it arrives (before any injected latency) and its status when it
/// is answered, so the first sighting of each is that moment, late by at most one period.
#[derive(Debug)]
pub struct LogSampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Timeline>,
}

impl LogSampler {
    pub fn start(
        twilio: Arc<TwilioEmulator>,
        livekit: Arc<LiveKitEmulator>,
        every: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut t = Timeline::default();
            loop {
                let last = flag.load(Ordering::Acquire);
                let requests = twilio.requests();
                let now = Instant::now();
                for r in requests {
                    note(&mut t.twilio, r.seq, r.status.is_some(), now);
                }
                let requests = livekit.requests();
                let now = Instant::now();
                for r in requests {
                    note(&mut t.livekit, r.seq, r.status.is_some(), now);
                }
                if last {
                    break;
                }
                std::thread::sleep(every);
            }
            t
        });
        Self { stop, handle }
    }

    /// One last look, then the timeline.
    pub fn finish(self) -> Timeline {
        self.stop.store(true, Ordering::Release);
        self.handle.join().unwrap_or_default()
    }
}

fn note(map: &mut BTreeMap<u64, Seen>, seq: u64, answered: bool, now: Instant) {
    let seen = map.entry(seq).or_insert(Seen {
        arrived: now,
        answered: None,
    });
    if answered && seen.answered.is_none() {
        seen.answered = Some(now);
    }
}

/// The highest resident memory of some processes, sampled every `every`.
#[derive(Debug)]
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<BTreeMap<u32, u64>>,
}

impl RssSampler {
    pub fn start(pids: Vec<u32>, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut peak: BTreeMap<u32, u64> = BTreeMap::new();
            while !flag.load(Ordering::Acquire) {
                for pid in &pids {
                    if let Some(m) = memory_of(*pid) {
                        let p = peak.entry(*pid).or_default();
                        *p = (*p).max(m.rss_kib);
                    }
                }
                std::thread::sleep(every);
            }
            peak
        });
        Self { stop, handle }
    }

    /// The peak RSS per pid, KiB.
    pub fn finish(self) -> BTreeMap<u32, u64> {
        self.stop.store(true, Ordering::Release);
        self.handle.join().unwrap_or_default()
    }
}

/// `perf record -g` attached to a process for the length of one run, when the environment
/// asks for it (`TRUNKLINE_BENCH_PERF=<dir>`). Software clock events: virtual machines
/// often have no hardware counters.
#[derive(Debug)]
pub struct Perf {
    child: Child,
    pub output: PathBuf,
}

impl Perf {
    /// Start recording `pid` into `<dir>/<name>.perf.data` if `TRUNKLINE_BENCH_PERF` names
    /// a directory; `None` otherwise or when perf cannot start.
    pub fn maybe_start(pid: u32, name: &str) -> Option<Self> {
        let dir = std::env::var_os("TRUNKLINE_BENCH_PERF")?;
        let dir = Path::new(&dir);
        std::fs::create_dir_all(dir).ok()?;
        let output = dir.join(format!("{name}.perf.data"));
        let child = Command::new("perf")
            .args(["record", "-F", "997", "-e", "cpu-clock", "-g", "-o"])
            .arg(&output)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        // perf needs a moment to attach before the run starts.
        std::thread::sleep(Duration::from_millis(300));
        Some(Self { child, output })
    }

    /// SIGINT (perf writes its file) and wait.
    pub fn finish(mut self) -> PathBuf {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return self.output.clone();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.output.clone()
    }
}

/// CPU time so far: the whole machine (from `/proc/stat`) and some processes (from
/// `/proc/<pid>/stat`), in clock ticks.
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot {
    pub machine: MachineTicks,
    pub processes: BTreeMap<u32, u64>,
    pub at: Option<Instant>,
}

/// The machine's ticks from the `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineTicks {
    /// Everything but idle and I/O wait (steal included).
    pub busy: u64,
    pub total: u64,
    /// The hypervisor ran something else while this machine wanted a core.
    pub steal: u64,
}

/// The machine's ticks from the `cpu` line of a `/proc/stat` text.
pub fn parse_proc_stat(text: &str) -> Option<MachineTicks> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some(MachineTicks {
        busy: total.saturating_sub(idle),
        total,
        steal: v.get(7).copied().unwrap_or(0),
    })
}

/// utime + stime of a `/proc/<pid>/stat` text (the command may contain spaces and
/// parentheses: fields are counted after the last `)`).
pub fn parse_pid_stat(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3 of stat(5); utime and stime are fields 14 and 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

impl CpuSnapshot {
    pub fn take(pids: &[u32]) -> Self {
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|t| parse_proc_stat(&t))
            .unwrap_or_default();
        let processes = pids
            .iter()
            .filter_map(|pid| {
                let t = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                Some((*pid, parse_pid_stat(&t)?))
            })
            .collect();
        Self {
            machine,
            processes,
            at: Some(Instant::now()),
        }
    }

    /// Shares of the machine's CPU capacity between `self` and `later` (1.0 = every core
    /// busy): the whole machine, the given processes together.
    #[allow(clippy::cast_precision_loss)] // tick counts far below 2^53
    pub fn shares(&self, later: &Self) -> CpuShares {
        let (a, b) = (self.machine, later.machine);
        let total = b.total.saturating_sub(a.total).max(1) as f64;
        let busy = b.busy.saturating_sub(a.busy) as f64;
        let steal = b.steal.saturating_sub(a.steal) as f64;
        let procs: u64 = later
            .processes
            .iter()
            .map(|(pid, t)| t.saturating_sub(self.processes.get(pid).copied().unwrap_or(*t)))
            .sum();
        CpuShares {
            machine_busy: crate::stats::round3(busy / total),
            processes: crate::stats::round3(procs as f64 / total),
            steal: crate::stats::round3(steal / total),
        }
    }
}

/// CPU use over an interval, as shares of the machine's capacity.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CpuShares {
    pub machine_busy: f64,
    pub processes: f64,
    /// Taken by the hypervisor for other guests: time this machine wanted a core and had
    /// none. A run with much of it measured the host's neighbours as much as trunkline.
    pub steal: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_busy_and_total() {
        let text = "cpu  100 5 50 800 20 1 2 3 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(
            parse_proc_stat(text),
            Some(MachineTicks {
                busy: 161,
                total: 981,
                steal: 3
            })
        );
        assert_eq!(parse_proc_stat("intr 1 2\n"), None);
    }

    #[test]
    fn pid_stat_utime_and_stime_with_a_tricky_name() {
        let text = "1234 (trunk line) (x)) S 1 1234 1234 0 -1 4194560 500 0 0 0 70 30 0 0 20 0 9 0 100 200 300";
        assert_eq!(parse_pid_stat(text), Some(100));
        assert_eq!(parse_pid_stat("garbage"), None);
    }

    #[test]
    fn shares_of_the_machine() {
        let a = CpuSnapshot {
            machine: MachineTicks {
                busy: 100,
                total: 1000,
                steal: 10,
            },
            processes: BTreeMap::from([(1, 10), (2, 5)]),
            at: None,
        };
        let b = CpuSnapshot {
            machine: MachineTicks {
                busy: 250,
                total: 1200,
                steal: 40,
            },
            processes: BTreeMap::from([(1, 60), (2, 55)]),
            at: None,
        };
        let s = a.shares(&b);
        assert!((s.machine_busy - 0.75).abs() < 1e-9);
        assert!((s.processes - 0.5).abs() < 1e-9);
        assert!((s.steal - 0.15).abs() < 1e-9);
    }
}
