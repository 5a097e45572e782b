//! A client worker process (`alert-load worker`, started by the parent): opens its share of
//! subscribers from one source address, stamps every delivery with `CLOCK_MONOTONIC`, and
//! tells the parent on stdout when all of its live subscribers have a broadcast.
//!
//! Three modes on the same accounting: WebSocket subscribers of `/ws/alerts` (tokio-tungstenite
//! with a small read buffer; only the `seq` of each text frame is read), SSE subscribers of
//! `/sse/alerts` (HTTP/1.0, events counted by their `id:`), or raw TCP readers of the ceiling
//! server's fixed-size frames (sequence number in the first 8 bytes). One
//! current-thread runtime: a worker costs one core at most, like a client machine's loop.
//! The process ends on `quit` or when its stdin closes (the parent is gone).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::proto::{Command, Report};
use crate::tally::{State, alert_seq};

/// Attempts per connection before it counts as failed.
const ATTEMPTS: u32 = 3;
/// Source ports a worker binds explicitly (its source address is its own).
const PORT_FIRST: u16 = 10_000;
const PORT_LAST: u16 = 64_999;

/// Flags of `alert-load worker` (built by the parent, not typed by people).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Source address every connection binds to before connecting.
    #[arg(long)]
    pub source: Ipv4Addr,
    /// `ADDR=COUNT`: open COUNT subscribers to ADDR (repeatable).
    #[arg(long = "target", value_parser = parse_target)]
    pub targets: Vec<(SocketAddr, usize)>,
    /// WebSocket path and query (`/ws/alerts?region=330000`); without it, raw mode.
    #[arg(long)]
    pub path: Option<String>,
    /// Raw mode: bytes per frame.
    #[arg(long, default_value_t = 300)]
    pub frame_bytes: usize,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// tungstenite read buffer per connection, bytes.
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
    /// Seconds one connection attempt (TCP + upgrade) may take.
    #[arg(long, default_value_t = 30)]
    pub connect_timeout: u64,
}

/// `127.0.0.1:9000=5000`.
pub fn parse_target(text: &str) -> Result<(SocketAddr, usize), String> {
    let (addr, count) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not ADDR=COUNT"))?;
    let addr = addr.parse().map_err(|e| format!("{addr:?}: {e}"))?;
    let count = count.parse().map_err(|e| format!("{count:?}: {e}"))?;
    Ok((addr, count))
}

/// Runs a worker to the end.
pub fn main(args: WorkerArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let (out, mut lines) = mpsc::unbounded_channel::<Report>();
    let total = args.targets.iter().map(|(_, n)| n).sum();
    let state = Arc::new(Mutex::new(State::new(total, out.clone())));
    // Stdout writer: one line per report, flushed at once (the parent times on them).
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(report) = lines.recv().await {
            let line = format!("{}\n", report.line());
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let args = Arc::new(args);
    let ports = Arc::new(Ports(AtomicUsize::new(0)));
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    for (target, count) in args.targets.clone() {
        for _ in 0..count {
            let permit = gate.clone().acquire_owned().await?;
            let (args, state, ports) = (args.clone(), state.clone(), ports.clone());
            tokio::spawn(async move {
                subscriber(&args, target, &state, &ports, permit).await;
            });
        }
    }
    // Commands until `quit` or EOF.
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = stdin.next_line().await {
        match Command::parse(&line) {
            Some(Command::Query(seq)) => {
                let tally = State::lock(&state).query(seq);
                let _ = out.send(Report::Partial(tally));
            }
            Some(Command::Quit) => break,
            Some(Command::Broadcast(_)) | None => {
                let _ = out.send(Report::Error(format!("worker: unknown command {line:?}")));
            }
        }
    }
    drop(out);
    State::lock(&state).detach();
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    Ok(())
}

/// One subscriber: connect (a few attempts), then count deliveries until the connection ends.
async fn subscriber(
    args: &WorkerArgs,
    target: SocketAddr,
    state: &Mutex<State>,
    ports: &Ports,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let limit = Duration::from_secs(args.connect_timeout);
    let mut last_error = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
        }
        let stream = match tokio::time::timeout(limit, connect(args.source, target, ports)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                last_error = format!("connect: {e:#}");
                continue;
            }
            Err(_) => {
                last_error = "connect timed out".to_owned();
                continue;
            }
        };
        match &args.path {
            None => {
                drop(permit);
                State::lock(state).connected();
                read_raw(stream, args.frame_bytes, state).await;
                State::lock(state).ended();
                return;
            }
            Some(path) if path.starts_with("/sse/") => {
                match tokio::time::timeout(limit, sse_request(stream, path)).await {
                    Ok(Ok((stream, rest))) => {
                        drop(permit);
                        State::lock(state).connected();
                        read_sse(stream, rest, args.read_buffer, state).await;
                        State::lock(state).ended();
                        return;
                    }
                    Ok(Err(e)) => last_error = format!("SSE request: {e:#}"),
                    Err(_) => last_error = "SSE request timed out".to_owned(),
                }
            }
            Some(path) => {
                let url = format!("ws://{target}{path}");
                let config = WebSocketConfig::default()
                    .read_buffer_size(args.read_buffer)
                    .write_buffer_size(0)
                    .max_message_size(Some(1 << 20));
                let handshake =
                    tokio_tungstenite::client_async_with_config(url, stream, Some(config));
                match tokio::time::timeout(limit, handshake).await {
                    Ok(Ok((ws, _))) => {
                        drop(permit);
                        State::lock(state).connected();
                        read_ws(ws, state).await;
                        State::lock(state).ended();
                        return;
                    }
                    Ok(Err(e)) => last_error = format!("upgrade: {e}"),
                    Err(_) => last_error = "upgrade timed out".to_owned(),
                }
            }
        }
    }
    State::lock(state).failed(&format!("{target}: {last_error}"));
}

/// Source ports handed out in turn (the source address is the worker's own).
#[derive(Debug)]
struct Ports(AtomicUsize);

impl Ports {
    fn next(&self) -> u16 {
        let span = usize::from(PORT_LAST - PORT_FIRST) + 1;
        let n = self.0.fetch_add(1, Ordering::Relaxed) % span;
        PORT_FIRST.saturating_add(u16::try_from(n).unwrap_or(0))
    }
}

/// Binds an explicit source port, then connects. `bind(addr, 0)` would make the kernel search
/// its bind table for a free port on every connect, which grows with every socket bound on the
/// machine (~70 % of the CPU of a 100k connect storm went to `inet_bhash2_conflict` and
/// `inet_bind2_bucket_find`). `SO_REUSEADDR` lets a port of an earlier run still in TIME_WAIT
/// be bound again (the destination port differs, so the 4-tuple is new).
async fn connect(source: Ipv4Addr, target: SocketAddr, ports: &Ports) -> anyhow::Result<TcpStream> {
    let mut tries = 0;
    let socket = loop {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        let port = ports.next();
        match socket.bind(SocketAddr::V4(SocketAddrV4::new(source, port))) {
            Ok(()) => break socket,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 64 => tries += 1,
            Err(e) => return Err(e).with_context(|| format!("bind {source}:{port}")),
        }
    };
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn read_raw(mut stream: TcpStream, frame_bytes: usize, state: &Mutex<State>) {
    let mut frame = vec![0u8; frame_bytes.max(8)];
    while stream.read_exact(&mut frame).await.is_ok() {
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&frame[..8]);
        State::lock(state).delivered(u64::from_le_bytes(seq), frame.len());
    }
}

async fn read_ws(mut ws: tokio_tungstenite::WebSocketStream<TcpStream>, state: &Mutex<State>) {
    while let Some(message) = ws.next().await {
        match message {
            Ok(Message::Text(text)) => {
                if let Some(seq) = alert_seq(text.as_str()) {
                    State::lock(state).delivered(seq, text.len());
                }
            }
            Ok(Message::Close(_)) | Err(_) => break,
            // Pings are answered by tungstenite on the next read.
            Ok(_) => {}
        }
    }
}

/// Sends `GET path` (HTTP/1.0: the event stream is then the raw body, no chunk framing) and
/// reads the response head; returns the stream and what came after the head.
async fn sse_request(mut stream: TcpStream, path: &str) -> anyhow::Result<(TcpStream, Vec<u8>)> {
    let request = format!("GET {path} HTTP/1.0\r\nHost: hub\r\nAccept: text/event-stream\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            anyhow::ensure!(
                buf.starts_with(b"HTTP/1.1 200") || buf.starts_with(b"HTTP/1.0 200"),
                "answer {:?}",
                String::from_utf8_lossy(&buf[..at.min(80)])
            );
            return Ok((stream, buf.split_off(at + 4)));
        }
        anyhow::ensure!(buf.len() < 16 * 1024, "response head over 16 KiB");
    }
}

/// Counts the events of an SSE stream by their `id:` (the alert's sequence number).
async fn read_sse(
    mut stream: TcpStream,
    mut buf: Vec<u8>,
    read_buffer: usize,
    state: &Mutex<State>,
) {
    let mut chunk = vec![0u8; read_buffer.max(512)];
    loop {
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let event = &buf[..end];
            if let Some(seq) = sse_id(event) {
                State::lock(state).delivered(seq, end + 2);
            }
            buf.drain(..end + 2);
        }
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
}

/// The `id:` of one event's lines.
fn sse_id(event: &[u8]) -> Option<u64> {
    event.split(|&b| b == b'\n').find_map(|line| {
        let digits = line.strip_prefix(b"id: ")?;
        std::str::from_utf8(digits).ok()?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_ids_are_read_from_events() {
        assert_eq!(sse_id(b"id: 42\ndata: {}"), Some(42));
        assert_eq!(sse_id(b"retry: 3000"), None);
        assert_eq!(sse_id(b":"), None);
        assert_eq!(sse_id(b"event: reset\ndata: {}"), None);
    }

    #[test]
    fn targets_parse() {
        assert_eq!(
            parse_target("127.0.0.1:9000=5000"),
            Ok((SocketAddr::from(([127, 0, 0, 1], 9000)), 5000))
        );
        assert!(parse_target("127.0.0.1:9000").is_err());
        assert!(parse_target("x=1").is_err());
    }
}
