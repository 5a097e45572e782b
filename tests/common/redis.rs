//! A real `redis-server` for a test: started on a free 127.0.0.1 port in its own temporary
//! directory with the persistence the hub's "acknowledged means durable" needs (`appendonly
//! yes`, `appendfsync always`), killed on drop. It can be killed with SIGKILL and restarted on
//! the same port and directory (its AOF brings the data back).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use std::io::{Read as _, Write as _};

/// A running `redis-server`.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    password: Option<String>,
    _tmp: tempfile::TempDir,
}

impl Redis {
    /// Starts a fresh server (panics if `redis-server` is missing: CI installs it).
    pub fn start() -> Redis {
        Redis::start_with(None)
    }

    /// Starts a fresh server that requires `password` (`requirepass`), if given.
    pub fn start_with(password: Option<&str>) -> Redis {
        let tmp = tempfile::tempdir().expect("tmp");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut redis = Redis {
            child: None,
            port,
            dir: tmp.path().to_path_buf(),
            password: password.map(str::to_owned),
            _tmp: tmp,
        };
        redis.spawn();
        redis
    }

    /// `redis://[:password@]127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    fn spawn(&mut self) {
        let mut command = Command::new("redis-server");
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let child = command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        self.child = Some(child);
        for _ in 0..250 {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer PING on port {}", self.port);
    }

    /// Whether the server answers (after loading its data): `PONG`, or the refusal an
    /// unauthenticated `PING` gets from a server with a password.
    pub fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"))
    }

    /// One command, inline syntax; the raw reply.
    /// One command with binary-safe arguments (RESP), e.g. a field holding a newline.
    pub fn command_args(&self, args: &[&str]) -> String {
        let mut line = format!("*{}\r\n", args.len());
        for arg in args {
            line.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        // `command` appends one more CRLF: an empty inline command Redis ignores.
        self.command(line.trim_end_matches("\r\n"))
    }

    pub fn command(&self, line: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect redis");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        if let Some(password) = &self.password {
            s.write_all(format!("AUTH {password}\r\n").as_bytes())
                .expect("auth");
            let mut ok = [0u8; 5];
            s.read_exact(&mut ok).expect("auth answer");
        }
        s.write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        let mut buf = vec![0u8; 65536];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// SIGKILL (no shutdown save: only what was fsynced survives).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes it (SIGSTOP) or thaws it (SIGCONT): while frozen, the kernel still accepts
    /// connections and takes requests, and nothing answers (a hung server, a black hole).
    #[allow(dead_code)]
    pub fn freeze(&self, frozen: bool) {
        let Some(child) = &self.child else { return };
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal}");
    }

    /// Starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
