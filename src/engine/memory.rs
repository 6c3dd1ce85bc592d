//! How much memory this process may use, so that a front can choose
//! [`EngineConfig::low_memory`](super::EngineConfig::low_memory) where it is short.
//!
//! Why: the boxes NVR software runs on (Raspberry Pi class, NAS) have 1 to 4 GB for everything,
//! and a container caps a process below its machine. `low_memory` gives the same detections and
//! the same pixels with fewer ONNX Runtime sessions (about 40 MB less at 1080p, 60 MB at 4K, for
//! up to 10 % more time), a trade that is right on such a box and wrong on a workstation. The
//! command line makes it by default from [`memory_is_short`]; the library never reads these
//! files by itself, so a host decides for its own process.

use std::path::{Path, PathBuf};

/// Below this much memory (the machine's, or a control group's limit), memory counts as short:
/// the 1 to 4 GB of the devices NVR software runs on.
pub const SHORT_MEMORY: u64 = 4 << 30;

/// The memory this process may use, in bytes, where Linux says: the machine's (`MemTotal` of
/// `/proc/meminfo`) or, when lower, the limit of its control group or of one above it (cgroup v2
/// `memory.max`, v1 `memory.limit_in_bytes`), as a container sets. `None` where none of these can
/// be read (another system).
pub fn memory_limit() -> Option<u64> {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| mem_total(&t));
    let group = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| cgroup_limit(&t, Path::new("/sys/fs/cgroup"), read_limit));
    match (machine, group) {
        (Some(m), Some(g)) => Some(m.min(g)),
        (m, g) => m.or(g),
    }
}

/// Whether this process's memory ([`memory_limit`]) is under [`SHORT_MEMORY`]: the command
/// line's rule for `low_memory`, which the Python and C fronts offer their hosts too.
pub fn memory_is_short() -> bool {
    short(memory_limit())
}

/// Whether `limit` is under [`SHORT_MEMORY`]; an unknown limit is not short.
fn short(limit: Option<u64>) -> bool {
    limit.is_some_and(|m| m < SHORT_MEMORY)
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

/// A limit file's bytes: a number, or `None` for `max` (no limit) or anything unreadable.
fn read_limit(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The lowest memory limit over the control groups of a `/proc/self/cgroup` text (`cgroup`),
/// their limit files under `root` read with `read`: for cgroup v2 (the `0::PATH` line) each
/// `memory.max` from PATH up to the root, as a parent's limit binds its children; for v1 (the
/// line naming the `memory` controller) `memory.limit_in_bytes` the same way under
/// `root/memory`.
fn cgroup_limit(cgroup: &str, root: &Path, read: impl Fn(&Path) -> Option<u64>) -> Option<u64> {
    let mut lowest: Option<u64> = None;
    for line in cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (base, file) = if controllers.is_empty() {
            (root.to_path_buf(), "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (root.join("memory"), "memory.limit_in_bytes")
        } else {
            continue;
        };
        for dir in ancestors(&base, path) {
            if let Some(limit) = read(&dir.join(file)) {
                lowest = Some(lowest.map_or(limit, |l| l.min(limit)));
            }
        }
    }
    lowest
}

/// `base` joined with `path` (a control group's path, from `/`), then with each of its parents
/// up to `base` itself. A path that climbs (`..`) gives `base` alone.
fn ancestors(base: &Path, path: &str) -> Vec<PathBuf> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return vec![base.to_path_buf()];
    }
    (0..=parts.len())
        .rev()
        .map(|n| parts[..n].iter().fold(base.to_path_buf(), |d, p| d.join(p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn mem_total_reads_kilobytes() {
        let text = "MemFree:  100 kB\nMemTotal:       24576000 kB\nMemAvailable: 5 kB\n";
        assert_eq!(mem_total(text), Some(24_576_000 * 1024));
        assert_eq!(mem_total("MemTotal: 12\n"), Some(12));
        assert_eq!(mem_total("MemTotal: x kB\n"), None);
        assert_eq!(mem_total("MemTotal: 1 MB\n"), None);
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total(""), None);
    }

    #[test]
    fn the_lowest_limit_from_the_group_up_to_the_root_binds() {
        let root = Path::new("/cg");
        let files: HashMap<PathBuf, u64> = [
            ("/cg/memory.max", 64 << 30),
            ("/cg/box/memory.max", 1 << 30),
            ("/cg/box/app/memory.max", 3 << 30),
            ("/cg/memory/docker/memory.limit_in_bytes", 512 << 20),
            (
                "/cg/memory/memory.limit_in_bytes",
                9_223_372_036_854_771_712,
            ),
        ]
        .into_iter()
        .map(|(p, v)| (PathBuf::from(p), v))
        .collect();
        let read = |p: &Path| files.get(p).copied();
        // v2: a parent's 1 GiB binds the child's 3 GiB.
        assert_eq!(cgroup_limit("0::/box/app\n", root, read), Some(1 << 30));
        // A group with no file of its own ("max" reads as none) takes its parents'.
        assert_eq!(cgroup_limit("0::/other\n", root, read), Some(64 << 30));
        // v1: the memory controller's line, among others.
        let v1 = "12:cpu,cpuacct:/docker\n4:memory:/docker\n1:name=systemd:/x\n";
        assert_eq!(cgroup_limit(v1, root, read), Some(512 << 20));
        // A path that climbs out is read at the root only.
        assert_eq!(cgroup_limit("0::/box/../x\n", root, read), Some(64 << 30));
        // Nothing to read: no limit known.
        assert_eq!(cgroup_limit("", root, read), None);
        assert_eq!(cgroup_limit("garbage\n", root, read), None);
        assert_eq!(cgroup_limit("0::/box\n", root, |_| None), None);
    }

    #[test]
    fn memory_is_short_under_four_gib_and_unknown_is_not() {
        assert!(short(Some(1 << 30)));
        assert!(short(Some(SHORT_MEMORY - 1)));
        assert!(!short(Some(SHORT_MEMORY)));
        assert!(!short(Some(u64::MAX)));
        assert!(!short(None));
        // This machine's answer is whatever it is, but it is an answer on Linux.
        if cfg!(target_os = "linux") {
            assert!(memory_limit().is_some_and(|m| m > 0));
        }
    }
}
