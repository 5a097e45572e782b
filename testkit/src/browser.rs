//! Headless Debian Chromium driven by `/usr/bin/chromedriver` over W3C WebDriver JSON.
//!
//! [`Browser::launch`] starts chromedriver on a free port, opens one session with the flags
//! measured to work on these machines (see `shared/TESTING.md`) and a fresh profile directory.
//! [`Browser::eval`] awaits a JS expression (promises included) through `execute/async`.
//!
//! Teardown: [`Browser::close`] deletes the session (chromedriver makes Chromium exit and reaps
//! it), then kills and reaps chromedriver. If a test panics instead, `Drop` does the same with a
//! blocking raw-HTTP `DELETE`, and as a last resort kills, by PID, any process still using this
//! browser's unique `--user-data-dir`. Run browser tests inside [`crate::netns`]'s namespace.
//! (Chromium's `chrome_crashpad_handler` double-forks away from us whatever the flags; it exits
//! with Chromium and PID 1 here reaps it within seconds.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::{Error, Result};

/// How to start the browser. `Default` is Debian's Chromium with the flags from TESTING.md.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// The browser binary (Debian: `/usr/bin/chromium`; never a downloaded build).
    pub chromium: PathBuf,
    /// The driver binary (Debian package `chromium-driver`).
    pub chromedriver: PathBuf,
    /// Flags added after the defaults (e.g. `--force-fieldtrials=…`).
    pub extra_args: Vec<String>,
    /// Window size, which is also the screenshot size.
    pub window: (u32, u32),
    /// Upper bound for one `eval`/`execute_async` call (WebDriver `script` timeout).
    pub script_timeout: Duration,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        Self {
            chromium: PathBuf::from("/usr/bin/chromium"),
            chromedriver: PathBuf::from("/usr/bin/chromedriver"),
            extra_args: Vec::new(),
            window: (1280, 800),
            // Long enough for ICE + DTLS + first frames on a loaded 2-core CI machine.
            script_timeout: Duration::from_secs(30),
        }
    }
}

/// The flags that worked here: headless, fake camera/microphone without a permission prompt,
/// loopback ICE candidates (no mDNS hiding), and no background traffic of the browser's own.
fn default_args(profile: &Path, window: (u32, u32)) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        "--allow-loopback-in-peer-connection",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--no-default-browser-check",
        "--no-first-run",
        "--metrics-recording-only",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.push(format!("--window-size={},{}", window.0, window.1));
    args
}

/// One Chromium session behind its own chromedriver process.
#[derive(Debug)]
pub struct Browser {
    driver: Option<Child>,
    base: String,
    port: u16,
    session: String,
    http: reqwest::Client,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and Chromium with [`BrowserOptions::default`].
    pub async fn launch() -> Result<Self> {
        Self::launch_with(BrowserOptions::default()).await
    }

    /// Starts chromedriver on a free port and opens a session; fails within ~20 s.
    pub async fn launch_with(opts: BrowserOptions) -> Result<Self> {
        let profile = tempfile::Builder::new()
            .prefix("testkit-chromium-")
            .tempdir()?;
        let port = crate::free_tcp_port()?;
        let log = std::fs::File::create(profile.path().join("chromedriver.log"))?;
        let driver = Command::new(&opts.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let http = reqwest::Client::builder().no_proxy().build()?;
        let mut browser = Self {
            driver: Some(driver),
            base: format!("http://127.0.0.1:{port}"),
            port,
            session: String::new(),
            http,
            profile,
        };
        browser.wait_ready().await?;
        let mut args = default_args(
            browser.profile.path().join("profile").as_path(),
            opts.window,
        );
        args.extend(opts.extra_args.iter().cloned());
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "timeouts": {"script": opts.script_timeout.as_millis() as u64, "pageLoad": 30_000},
            "goog:chromeOptions": {"binary": opts.chromium, "args": args},
        }}});
        let v = browser
            .command(reqwest::Method::POST, "session", Some(caps))
            .await?;
        browser.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| wd_err("session", format!("no sessionId in {v}")))?
            .to_owned();
        Ok(browser)
    }

    async fn wait_ready(&self) -> Result<()> {
        let url = format!("{}/status", self.base);
        crate::wait_until(Duration::from_secs(15), "chromedriver /status", || async {
            let Ok(resp) = self.http.get(&url).send().await else {
                return Ok(None);
            };
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            Ok(v["value"]["ready"].as_bool().unwrap_or(false).then_some(()))
        })
        .await
    }

    /// Sends one WebDriver command; `path` is relative to the server root (`session/…`).
    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}/{path}", self.base);
        let mut req = self.http.request(method, &url);
        // W3C requires a JSON body on every POST, `{}` when there are no parameters.
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let v: Value = resp.json().await?;
        if !status.is_success() || v["value"]["error"].is_string() {
            let e = &v["value"];
            return Err(wd_err(path, format!("{}: {}", e["error"], e["message"])));
        }
        Ok(v["value"].clone())
    }

    fn session_path(&self, tail: &str) -> String {
        format!("session/{}/{tail}", self.session)
    }

    /// Navigates and waits for the page's `load` event.
    pub async fn goto(&self, url: &str) -> Result<()> {
        let path = self.session_path("url");
        self.command(reqwest::Method::POST, &path, Some(json!({"url": url})))
            .await?;
        Ok(())
    }

    /// Runs a synchronous script (`return …;`) with `args` as `arguments`.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        let body = json!({"script": script, "args": args});
        self.command(
            reqwest::Method::POST,
            &self.session_path("execute/sync"),
            Some(body),
        )
        .await
    }

    /// Runs a W3C async script: the last element of `arguments` is the callback to call.
    pub async fn execute_async(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        let body = json!({"script": script, "args": args});
        self.command(
            reqwest::Method::POST,
            &self.session_path("execute/async"),
            Some(body),
        )
        .await
    }

    /// Evaluates a JS expression and awaits it if it is a promise; a rejection becomes an
    /// [`Error::WebDriver`] carrying the JS error text. The value must be JSON-serialisable.
    pub async fn eval(&self, expr: &str) -> Result<Value> {
        let script = format!(
            "const done = arguments[arguments.length - 1];\n\
             Promise.resolve().then(() => ({expr}))\n\
               .then(v => done({{ok: v === undefined ? null : v}}),\n\
                     e => done({{err: String(e && e.stack || e)}}));"
        );
        let v = self.execute_async(&script, Vec::new()).await?;
        match v.get("err") {
            Some(e) => Err(wd_err(
                "eval",
                format!("{expr}: {}", e.as_str().unwrap_or("?")),
            )),
            None => Ok(v.get("ok").cloned().unwrap_or(Value::Null)),
        }
    }

    /// Polls `expr` until it evaluates to something truthy (not `null`/`false`/`0`/`""`) and
    /// returns that value. A `ReferenceError` (the page's script has not defined the name yet:
    /// a navigation can answer before the new document ran its scripts) counts as "not yet";
    /// if it lasts until `timeout`, that error is returned, not a bare timeout.
    pub async fn wait_for(&self, expr: &str, timeout: Duration) -> Result<Value> {
        let pending = std::cell::RefCell::new(None);
        let waited = crate::wait_until(timeout, expr, || async {
            match self.eval(expr).await {
                Ok(v) => {
                    *pending.borrow_mut() = None;
                    Ok(truthy(&v).then_some(v))
                }
                Err(Error::WebDriver { message, .. }) if message.contains("ReferenceError") => {
                    *pending.borrow_mut() = Some(message);
                    Ok(None)
                }
                Err(err) => Err(err),
            }
        })
        .await;
        match (waited, pending.into_inner()) {
            (Err(Error::Timeout(..)), Some(message)) => {
                // The page's script never defined what `expr` reads: say where the page got
                // to (a load that never finished, a script that failed or never loaded).
                // An error page (`chrome-error://…`) names its error only in its text.
                let probe = "JSON.stringify({href: location.href, readyState: document.readyState, \
                             scripts: Array.from(document.scripts, s => s.src || 'inline'), \
                             text: document.body ? document.body.innerText.slice(0, 400) : null})";
                let page = match self.eval(probe).await {
                    Ok(v) => v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    Err(err) => format!("(page not readable: {err})"),
                };
                Err(wd_err("eval", format!("{message}; page: {page}")))
            }
            (waited, _) => waited,
        }
    }

    /// A PNG of the viewport.
    pub async fn screenshot_png(&self) -> Result<Vec<u8>> {
        let v = self
            .command(reqwest::Method::GET, &self.session_path("screenshot"), None)
            .await?;
        let b64 = v
            .as_str()
            .ok_or_else(|| wd_err("screenshot", "not a string".into()))?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| wd_err("screenshot", e.to_string()))
    }

    /// Writes a PNG of the viewport to `path`.
    pub async fn save_screenshot(&self, path: impl AsRef<Path>) -> Result<()> {
        let png = self.screenshot_png().await?;
        tokio::fs::write(path, png).await?;
        Ok(())
    }

    /// The fresh temp directory holding this browser's profile and logs.
    pub fn profile_dir(&self) -> &Path {
        self.profile.path()
    }

    /// chromedriver's log (with Chromium's stderr), for failure messages.
    pub fn driver_log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromedriver.log")).unwrap_or_default()
    }

    /// Ends the session (Chromium exits), then stops and reaps chromedriver.
    pub async fn close(mut self) -> Result<()> {
        let path = format!("session/{}", self.session);
        let res = self.command(reqwest::Method::DELETE, &path, None).await;
        self.session.clear();
        self.teardown();
        res.map(|_| ())
    }

    fn teardown(&mut self) {
        if !self.session.is_empty() {
            // Best effort, blocking: Drop cannot await and may run inside a runtime.
            let _ = blocking_delete(self.port, &format!("/session/{}", self.session));
            self.session.clear();
        }
        if let Some(mut child) = self.driver.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        kill_profile_users(self.profile.path());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// JavaScript truthiness of a JSON value (objects and arrays are truthy).
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

fn wd_err(command: &str, message: String) -> Error {
    Error::WebDriver {
        command: command.to_owned(),
        message,
    }
}

/// `DELETE path` over a raw HTTP/1.1 socket; returns once the driver answered (Chromium gone).
/// chromedriver keeps the connection open, so read the header and `Content-Length` body only.
fn blocking_delete(port: u16, path: &str) -> std::io::Result<()> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(
        s,
        "DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Ok(());
            }
        }
    }
}

/// Kills (SIGKILL, by PID) processes whose command line names our profile directory: only
/// this browser's own Chromium processes can match, since the directory is a fresh temp dir.
fn kill_profile_users(profile: &Path) {
    let needle = profile.display().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    let pids: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .collect();
    if !pids.is_empty() {
        let _ = Command::new("kill")
            .arg("-9")
            .args(&pids)
            .stderr(Stdio::null())
            .status();
        // SIGKILL is delivered at once but a large process takes a moment to exit (it is
        // still `R` while its memory is torn down): wait, bounded, until each is gone or a
        // zombie, so a dropped browser is gone when the drop returns.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let exited = |pid: &String| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
                // `pid (comm) S ...`: the state follows the last ')'.
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
            })
        };
        while !pids.iter().all(exited) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
