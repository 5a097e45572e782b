//! The ceiling server (`alert-load ceiling-server`, a child process so its CPU is measured on
//! its own): the least a broadcast server can do on this machine. It accepts raw TCP
//! connections and, per `b SEQ` on stdin, writes one pre-encoded frame (SEQ in the first 8
//! bytes, then filler) to every socket in turn, one `write` each, on one tokio thread; then
//! reports `sent SEQ WRITTEN FAILED DONE_NS`. No parsing, no per-subscriber state beyond the
//! socket, no queue: what remains is the system calls and, on loopback, the receiver's side of
//! the delivery (charged to the sending core). [`phase`] runs the ceiling part of a run: as many
//! servers as hubs, measured with the same client layout as hubcast.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Mutex, mpsc};

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
    /// Bytes per frame.
    #[arg(long, default_value_t = 300)]
    pub frame_bytes: usize,
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
    let acceptor = tokio::spawn(async move {
        let mut reported = false;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    accepted.lock().await.push(stream);
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
                let frame = frame(seq, args.frame_bytes);
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
    let mut group = Group::default();
    for i in 0..args.hubs {
        let flags = ["--frame-bytes".to_owned(), args.frame_bytes.to_string()];
        let command = this_binary("ceiling-server", &flags)?;
        group.spawn(fleet, &format!("ceiling server {i}"), command)?;
    }
    let addrs = group.listening(Duration::from_secs(10)).await?;
    let mut servers = Servers {
        pids: group.pids.clone(),
        addrs,
        extra_pids: Vec::new(),
        group,
        trigger: Trigger::Ceiling { servers: args.hubs },
    };
    let phase = measure::run(fleet, &args.layout(100), &mut servers, "ceiling").await;
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
}
