//! Real-client test harness for hubcast's media plane (dev-dependency only, never shipped).
//!
//! End-to-end tests of the SFU must be proven with clients that share no code with the server:
//! headless Chromium driven over W3C WebDriver, and webrtc-rs (`webrtc` crate) peers that speak
//! WHIP/WHEP. Browser tests run inside a loopback-only network namespace so that nothing leaves
//! the machine; loss and delay are injected by a UDP relay instead of netem.
//!
//! # Layout
//! - [`browser`]: start `/usr/bin/chromedriver`, open a Chromium session with the flags that work
//!   on these machines, navigate, run (async) JS, take screenshots; everything dies on drop.
//! - [`netns`]: [`netns::ensure_isolated`] re-runs the current test inside `unshare -n` with only
//!   `lo` up; the [`isolated!`] macro is the one-line form for tests.
//! - [`lossy_relay`]: a tokio UDP relay that drops a fraction of datagrams and delays the rest.
//! - [`rtc_client`]: webrtc-rs clients: [`rtc_client::WhipPublisher`] (synthetic VP8 simulcast and
//!   Opus with RFC 6464 audio level) and [`rtc_client::WhepViewer`] (counts what arrives,
//!   RTX repairs included, see [`rtc_client::rtx`]).
//! - [`whip`]: the HTTP half of WHIP/WHEP (offer POST, `Location`, DELETE, layer preference).
//! - [`synth`]: synthetic VP8 / Opus RTP payloads and parsing of what a viewer receives.
//!
//! The static test pages used with Chromium live in `dashboard/assets/test/` (`publish.html`,
//! `view.html`) and are served by the hub at `/assets/test/…`.

#![forbid(unsafe_code)]

pub mod browser;
pub mod lossy_relay;
pub mod netns;
pub mod rtc_client;
pub mod synth;
pub mod whip;

use std::time::Duration;

/// Everything that can go wrong while driving a test client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Spawning or talking to a local process or socket failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// An HTTP request (WebDriver, WHIP, WHEP) could not be sent or its body read.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered with an unexpected status.
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        /// HTTP method of the request.
        method: &'static str,
        /// Absolute URL of the request.
        url: String,
        /// Status code received.
        status: u16,
        /// Response body (truncated), usually the server's JSON error.
        body: String,
    },
    /// chromedriver reported a WebDriver error (or returned something unparsable).
    #[error("webdriver {command}: {message}")]
    WebDriver {
        /// The command that failed, e.g. `execute/async`.
        command: String,
        /// The WebDriver `error` code and `message`.
        message: String,
    },
    /// The webrtc-rs stack failed.
    #[error("webrtc: {0}")]
    Rtc(#[from] webrtc::Error),
    /// A protocol expectation did not hold (missing `Location`, bad SDP, …).
    #[error("protocol: {0}")]
    Protocol(String),
    /// Waited longer than allowed.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Polls `probe` every 100 ms until it returns `Some`, or fails after `timeout`.
///
/// `what` names the condition in the timeout error so a failing test says what it waited for.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Timeout(timeout, what.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released; racy only against other processes).
pub fn free_tcp_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}
