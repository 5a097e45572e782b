//! Loopback-only network namespaces for tests that start browsers or real media clients.
//!
//! Chromium in the root namespace also uses the machine's real interface (and sends mDNS
//! multicast there); tests must never emit traffic beyond loopback. The pattern that works
//! here: the test calls [`ensure_isolated`] first. Outside a namespace it re-executes the same
//! test binary with only this test selected under
//! `unshare -n -- sh -c 'ip link set lo up; exec "$0" "$@"' <exe> <test> --exact …`
//! with [`ENV_IN_NETNS`]`=1`, waits for it, fails if it failed (or did not run exactly one
//! test), and tells the caller to return. Inside, it returns [`Isolation::Inside`] and the test
//! body runs: the hub, chromedriver and Chromium it starts are all in the namespace.
//!
//! ```no_run
//! #[tokio::test]
//! async fn chromium_publishes() {
//!     testkit::isolated!();
//!     // … only `lo` exists here …
//! }
//! ```
//!
//! Needs root (or unprivileged user namespaces with `unshare -rn`); these machines run as root.
//! Build before running (cargo needs the registry); the namespace has no route to it.

use std::process::Command;

/// Set to `1` in the environment of the re-executed test (not `HUBCAST_*`: the hub reads those).
pub const ENV_IN_NETNS: &str = "TESTKIT_IN_NETNS";

/// Where the current test body should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// This process is inside the loopback-only namespace: run the test body.
    Inside,
    /// The test already ran (and passed) in a child process inside the namespace: return.
    RanInChild,
}

/// True when this process runs in a namespace made by [`ensure_isolated`].
pub fn in_netns() -> bool {
    std::env::var(ENV_IN_NETNS).is_ok_and(|v| v == "1")
}

/// Names of the network interfaces of this process's namespace (from `/proc/self/net/dev`;
/// `/sys/class/net` would show the namespace sysfs was mounted in).
pub fn interfaces() -> Vec<String> {
    let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap_or_default();
    let mut names: Vec<String> = dev
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_owned())
        .collect();
    names.sort();
    names
}

/// Ensures the current libtest test runs in a loopback-only network namespace.
///
/// The test's name is taken from the current thread's name, which libtest sets to the test
/// path; call this first, on the test's own thread (true in `#[test]` and `#[tokio::test]`).
///
/// # Panics
/// If the child test fails, if it did not run exactly one test, or if `unshare` is unavailable.
pub fn ensure_isolated() -> Isolation {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("main");
    assert!(
        name != "main",
        "ensure_isolated: cannot tell the test name (thread is `main`); use ensure_isolated_named"
    );
    ensure_isolated_named(name)
}

/// [`ensure_isolated`] with an explicit libtest test path (e.g. `browser::loads_page`).
///
/// # Panics
/// As [`ensure_isolated`].
pub fn ensure_isolated_named(test: &str) -> Isolation {
    if in_netns() {
        assert_eq!(
            interfaces(),
            ["lo"],
            "{ENV_IN_NETNS}=1 but other interfaces are visible"
        );
        return Isolation::Inside;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new("unshare")
        .args(["-n", "--", "sh", "-c", SETUP_AND_EXEC])
        .arg(&exe)
        .args([
            test,
            "--exact",
            "--nocapture",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env(ENV_IN_NETNS, "1")
        .output()
        .expect("spawn `unshare` (util-linux); browser tests need it");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Forward through libtest's capture so the output shows with the test's own on failure.
    println!("--- {test} in a loopback-only netns ---\n{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "{test} failed inside the netns ({})",
        out.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{test}: the re-executed binary did not run exactly this one test"
    );
    Isolation::RanInChild
}

/// Brings `lo` up (a fresh namespace has it down), then becomes the test binary.
const SETUP_AND_EXEC: &str =
    "PATH=\"$PATH:/usr/sbin:/sbin\"; ip link set lo up || exit 97; exec \"$0\" \"$@\"";

/// One-line guard for tests: runs the rest of the test inside a loopback-only netns.
///
/// Expands to a `return` in the outer process, so use it in tests returning `()`.
#[macro_export]
macro_rules! isolated {
    () => {
        if $crate::netns::ensure_isolated() == $crate::netns::Isolation::RanInChild {
            return;
        }
    };
}
