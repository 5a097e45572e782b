//! The system under test: a `hubcast serve` child process on loopback with a temporary data
//! directory, its bearer token, its `/metrics`, and its shutdown.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::http;

/// A running hub.
#[derive(Debug)]
pub struct Hub {
    child: Child,
    /// HTTP listener.
    pub addr: SocketAddr,
    /// Bearer token (city-admin of 330100: may convene, publish and watch).
    pub token: String,
    /// Where the hub's stderr (logs) goes.
    pub log: PathBuf,
    _data: tempfile::TempDir,
}

impl Hub {
    /// Starts `binary serve` on free loopback ports (HTTP and SFU UDP port 0, ICE-TCP off) with
    /// `workers` SFU worker threads (0: the hub's default) and mints a token with the same data
    /// directory.
    pub fn start(binary: &Path, workers: usize) -> anyhow::Result<Hub> {
        let data = tempfile::Builder::new().prefix("sfu-load-").tempdir()?;
        let log = data.path().join("hub.log");
        let stderr = std::fs::File::create(&log)?;
        let mut child = Command::new(binary)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .env("HUBCAST_SFU__UDP_LISTEN", "127.0.0.1:0")
            .env("HUBCAST_SFU__TCP_LISTEN", "")
            .env("HUBCAST_SFU__WORKERS", workers.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the banner, then keeps draining stdout so the hub never blocks on it.
        std::thread::Builder::new()
            .name("hub-stdout".into())
            .spawn(move || {
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(url) = line.strip_prefix("hubcast listening on http://") {
                        let _ = tx.send(url.trim().to_owned());
                    }
                }
            })?;
        let addr: SocketAddr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().context("listening address")?,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("the hub did not start; its log:\n{tail}");
            }
        };
        let out = Command::new(binary)
            .args([
                "token",
                "--role",
                "city-admin",
                "--region",
                "330100",
                "--data-dir",
            ])
            .arg(data.path())
            .stderr(Stdio::null())
            .output()
            .context("hubcast token")?;
        if !out.status.success() {
            bail!("hubcast token failed: {}", out.status);
        }
        let token = String::from_utf8(out.stdout)?.trim().to_owned();
        Ok(Hub {
            child,
            addr,
            token,
            log,
            _data: data,
        })
    }

    /// The hub's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `POST path` with an SDP offer; returns the answer and the session id from `Location`.
    pub fn offer(&self, path: &str, sdp: &str) -> anyhow::Result<(String, u64)> {
        let auth = format!("Bearer {}", self.token);
        let r = http::request(
            self.addr,
            "POST",
            path,
            &[
                ("Content-Type", "application/sdp"),
                ("Authorization", &auth),
            ],
            sdp.as_bytes(),
        )?;
        if r.status != 201 {
            bail!("POST {path}: {} {}", r.status, r.body);
        }
        let location = r.header("location").context("201 without Location")?;
        let id = location
            .rsplit('/')
            .next()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no session id in Location {location:?}"))?;
        Ok((r.body, id))
    }

    /// One `GET /metrics`: every sample of one moment.
    pub fn scrape(&self) -> anyhow::Result<Scrape> {
        let r = http::request(self.addr, "GET", "/metrics", &[], &[])?;
        if r.status != 200 {
            bail!("GET /metrics: {}", r.status);
        }
        Ok(Scrape(r.body))
    }

    /// Asks the hub to stop (SIGTERM), then kills it if it has not exited within 5 s.
    pub fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Hub {
    /// Never leaves the hub running when the benchmark fails half-way (a no-op once reaped).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The hub's metrics at one moment (Prometheus text).
#[derive(Debug)]
pub struct Scrape(String);

impl Scrape {
    /// A sample without labels.
    pub fn sample(&self, name: &str) -> Option<f64> {
        (self.0.lines())
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .find_map(|v| v.trim().parse().ok())
    }

    /// The sum of a labelled family's samples (0 if it has none).
    pub fn sum(&self, name: &str) -> f64 {
        let prefix = format!("{name}{{");
        (self.0.lines())
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// A histogram's cumulative buckets: (upper bound in seconds, count), `+Inf` last.
    /// Empty if there is no such histogram.
    pub fn histogram(&self, name: &str) -> Vec<(f64, f64)> {
        let prefix = format!("{name}_bucket{{le=\"");
        (self.0.lines())
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .filter_map(|rest| {
                let (le, count) = rest.split_once("\"} ")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, count.trim().parse().ok()?))
            })
            .collect()
    }
}
