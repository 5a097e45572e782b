//! The ceiling server (`alert-load ceiling-server`, a child process so its CPU is measured on
//! its own): the least a broadcast server can do on this machine. It accepts raw TCP
//! connections and, per `b SEQ` on stdin, writes one pre-encoded frame (SEQ in the first 8
//! bytes, then filler) to every socket in turn, one `write` each, on one tokio thread; then
//! reports `sent SEQ WRITTEN FAILED DONE_NS`. No parsing, no per-subscriber state beyond the
//! socket, no queue: what remains is the system calls and, on loopback, the receiver's side of
//! the delivery (charged to the sending core). [`phase`] runs the ceiling part of a run: as many
//! servers as hubs, measured with the same client layout as hubcast.
//!
//! With `--websocket` the same server first answers each connection's WebSocket upgrade and
//! then writes one pre-encoded text frame (`{"type":"alert","seq":N,…}` padded to the alert's
//! size) per broadcast, so the run's own tokio-tungstenite subscribers read it: the least any
//! server can do for the clients the issue prescribes ([`ws_phase`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Mutex, mpsc};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::RunArgs;
use crate::measure::{self, Phase, Servers, Trigger};
use crate::procs::{Fleet, Group, mono_ns, this_binary};
use crate::proto::{Command, Report};

/// Flags of `alert-load ceiling-server` (built by the parent).
#[derive(Debug, Clone, clap::Args)]
pub struct CeilingArgs {
    /// Listen address (port 0: the kernel picks; reported as `listening ADDR`).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Bytes per frame (with `--websocket`: of the frame's text payload).
    #[arg(long, default_value_t = 300)]
    pub frame_bytes: usize,
    /// Answer a WebSocket upgrade first and send WebSocket text frames.
    #[arg(long)]
    pub websocket: bool,
}

/// The frame of broadcast `seq`: its number, little-endian, then filler.
pub fn frame(seq: u64, bytes: usize) -> Vec<u8> {
    let mut frame = vec![b'x'; bytes.max(8)];
    frame[..8].copy_from_slice(&seq.to_le_bytes());
    if let Some(last) = frame.last_mut()
        && bytes > 8
    {
        *last = b'\n';
    }
    frame
}

/// The WebSocket text frame of broadcast `seq`: a header, then a JSON object of `payload`
/// bytes (at least its fields) that the workers read the sequence number from.
pub fn ws_frame(seq: u64, payload: usize) -> Vec<u8> {
    let mut text = format!(r#"{{"type":"alert","seq":{seq},"pad":""#).into_bytes();
    let fill = payload.saturating_sub(text.len() + 2);
    text.resize(text.len() + fill, b'x');
    text.extend_from_slice(b"\"}");
    let mut frame = Vec::with_capacity(text.len() + 10);
    frame.push(0x81);
    match u16::try_from(text.len()) {
        Ok(n) if n < 126 => frame.extend_from_slice(&n.to_be_bytes()[1..]),
        Ok(n) => {
            frame.push(126);
            frame.extend_from_slice(&n.to_be_bytes());
        }
        Err(_) => {
            frame.push(127);
            frame.extend_from_slice(&u64::try_from(text.len()).unwrap_or(u64::MAX).to_be_bytes());
        }
    }
    frame.extend_from_slice(&text);
    frame
}

/// Reads a client's upgrade request and answers `101` (anything else closes the connection:
/// the workers are the only clients).
async fn upgrade(stream: &mut TcpStream) -> anyhow::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let end = loop {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "closed before the request head");
        head.extend_from_slice(&chunk[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        anyhow::ensure!(head.len() < 8192, "request head over 8 KiB");
    };
    let text = std::str::from_utf8(&head[..end])?;
    let key = text
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim())
        })
        .ok_or_else(|| anyhow::anyhow!("no Sec-WebSocket-Key"))?;
    let accept = derive_accept_key(key.as_bytes());
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(answer.as_bytes()).await?;
    Ok(())
}

/// Runs the server until `quit` or stdin closes.
pub fn main(args: &CeilingArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: &CeilingArgs) -> anyhow::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(args.listen)?;
    let listener = socket.listen(4096)?;
    let (out, mut lines) = mpsc::unbounded_channel::<Report>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(report) = lines.recv().await {
            let line = format!("{}\n", report.line());
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let _ = out.send(Report::Listening(listener.local_addr()?));
    let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let accepted = sockets.clone();
    let accept_out = out.clone();
    let websocket = args.websocket;
    let acceptor = tokio::spawn(async move {
        let mut reported = false;
        loop {
            match listener.accept().await {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    if websocket {
                        let accepted = accepted.clone();
                        tokio::spawn(async move {
                            if upgrade(&mut stream).await.is_ok() {
                                accepted.lock().await.push(stream);
                            }
                        });
                    } else {
                        accepted.lock().await.push(stream);
                    }
                }
                // Out of file descriptors and the like: say so once, keep serving the rest.
                Err(e) => {
                    if !reported {
                        reported = true;
                        let _ = accept_out.send(Report::Error(format!("ceiling accept: {e}")));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = stdin.next_line().await {
        match Command::parse(&line) {
            Some(Command::Broadcast(seq)) => {
                let frame = if args.websocket {
                    ws_frame(seq, args.frame_bytes)
                } else {
                    frame(seq, args.frame_bytes)
                };
                let mut all = sockets.lock().await;
                let (mut written, mut failed) = (0, 0);
                for socket in all.iter_mut() {
                    match socket.write_all(&frame).await {
                        Ok(()) => written += 1,
                        Err(_) => failed += 1,
                    }
                }
                let done_ns = mono_ns();
                let _ = out.send(Report::Sent {
                    seq,
                    written,
                    failed,
                    done_ns,
                });
            }
            Some(Command::Quit) => break,
            Some(Command::Query(_)) | None => {
                let _ = out.send(Report::Error(format!("ceiling: unknown command {line:?}")));
            }
        }
    }
    acceptor.abort();
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    Ok(())
}

/// The ceiling phase: one server per hub, the run's worker layout on 127.0.0.100 and up (not
/// the hub phase's addresses, so no client port of this phase lingers in TIME_WAIT there).
pub async fn phase(args: &RunArgs, fleet: &mut Fleet) -> anyhow::Result<Phase> {
    let flags = ["--frame-bytes".to_owned(), args.frame_bytes.to_string()];
    run_phase(args, fleet, &flags, None, 100, "ceiling").await
}

/// The WebSocket ceiling phase: the same servers answering the upgrade and writing one
/// WebSocket text frame of `--ws-frame-bytes`, read by the hub phase's own tokio-tungstenite
/// subscribers; its workers on 127.0.0.150 and up.
pub async fn ws_phase(args: &RunArgs, fleet: &mut Fleet) -> anyhow::Result<Phase> {
    let flags = [
        "--frame-bytes".to_owned(),
        args.ws_frame_bytes.to_string(),
        "--websocket".to_owned(),
    ];
    let path = Some(WS_PATH);
    run_phase(args, fleet, &flags, path, 150, "WebSocket ceiling").await
}

/// The path the WebSocket ceiling's subscribers ask for (the server reads only the key).
pub const WS_PATH: &str = "/ws/ceiling";

async fn run_phase(
    args: &RunArgs,
    fleet: &mut Fleet,
    flags: &[String],
    path: Option<&'static str>,
    first_source: u8,
    label: &str,
) -> anyhow::Result<Phase> {
    let mut group = Group::default();
    for i in 0..args.hubs {
        let command = this_binary("ceiling-server", flags)?;
        group.spawn(fleet, &format!("{label} server {i}"), command)?;
    }
    let addrs = group.listening(Duration::from_secs(10)).await?;
    let mut servers = Servers {
        pids: group.pids.clone(),
        addrs,
        extra_pids: Vec::new(),
        group,
        trigger: Trigger::Ceiling {
            servers: args.hubs,
            path,
        },
    };
    let phase = measure::run(fleet, &args.layout(first_source), &mut servers, label).await;
    fleet.stop_all().await;
    phase
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_carries_its_sequence_number() {
        let f = frame(0x0102, 300);
        assert_eq!(f.len(), 300);
        assert_eq!(&f[..8], &0x0102u64.to_le_bytes());
        assert_eq!(f.last(), Some(&b'\n'));
        assert_eq!(frame(5, 3).len(), 8);
    }

    #[test]
    fn the_websocket_frame_is_a_text_frame_the_workers_read() {
        let f = ws_frame(42, 562);
        assert_eq!(f[0], 0x81);
        assert_eq!(f[1], 126);
        assert_eq!(usize::from(u16::from_be_bytes([f[2], f[3]])), 562);
        assert_eq!(f.len(), 4 + 562);
        let text = std::str::from_utf8(&f[4..]).unwrap_or_default();
        assert!(
            serde_json::from_str::<serde_json::Value>(text).is_ok(),
            "{text}"
        );
        assert_eq!(crate::tally::alert_seq(text), Some(42));
        let small = ws_frame(7, 10);
        assert_eq!(usize::from(small[1]), small.len() - 2);
        assert_eq!(
            crate::tally::alert_seq(std::str::from_utf8(&small[2..]).unwrap_or_default()),
            Some(7)
        );
    }
}
