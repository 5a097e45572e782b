//! What every load generator (`benches/sfu-load`, `benches/alert-load`) records about a run:
//! the machine it ran on, which `hubcast` binary it measured and from which commit, and the
//! date. A BENCHMARKS.md entry names all of them so a number can be traced to its code.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The workspace root (this crate lives in `benches/benchkit`).
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Output of a command, trimmed ("" when it fails).
pub fn output_of(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Today's date (UTC), `YYYY-MM-DD`.
pub fn today() -> String {
    output_of("date", &["-u", "+%F"])
}

/// "2 cores (model), shared with other work; load average at start a b c".
pub fn machine_description() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cores} cores ({model}), shared with other work; load average at start {load}")
}

/// Aggregate CPU jiffies of the machine from `/proc/stat`: (busy, total).
pub fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// The `hubcast` binary to measure: `given` (a flag), else the one next to the running
/// load generator (both are built by `cargo build --release`). `flag` names the flag in the
/// error.
pub fn hub_binary(given: Option<&Path>, flag: &str) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory of the current executable")?
            .join("hubcast"),
    };
    if !path.is_file() {
        bail!(
            "no hubcast binary at {} (cargo build --release, or pass {flag})",
            path.display()
        );
    }
    Ok(path)
}

/// Which hub was measured: the binary's build time and the workspace commit, noting
/// uncommitted changes under `dirs` (the code the benchmark exercises).
pub fn hub_description(binary: &Path, dirs: &[&str]) -> String {
    let built = output_of("date", &["-u", "-r", &binary.to_string_lossy(), "+%FT%TZ"]);
    let head = output_of("git", &["-C", WORKSPACE, "rev-parse", "--short", "HEAD"]);
    let mut status = vec!["-C", WORKSPACE, "status", "--porcelain", "--"];
    status.extend_from_slice(dirs);
    let dirty = match output_of("git", &status).is_empty() {
        true => String::new(),
        false => {
            let named: Vec<String> = dirs.iter().map(|d| format!("{d}/")).collect();
            format!(" + uncommitted changes in {}", named.join(" or "))
        }
    };
    format!("`hubcast` release binary built {built}; workspace at {head}{dirty}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_filled_in() {
        assert!(machine_description().contains("cores ("));
        assert_eq!(output_of("false", &[]), "");
        assert_eq!(today().len(), 10);
        let missing = hub_binary(Some(Path::new("/nonexistent/hubcast")), "--hub");
        let err = missing.expect_err("no such file").to_string();
        assert!(err.contains("--hub"), "{err}");
    }
}
