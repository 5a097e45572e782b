//! `alert-load`: a load run of hubcast's live alert fan-out (issue 4). Not a test: it measures.
//!
//! N WebSocket subscribers of `/ws/alerts` (tokio-tungstenite, small read buffers) are opened
//! from several 127.0.0.x source addresses by client worker processes (this binary re-run as
//! `alert-load worker`, ≤ ~18k connections each: a process holds at most 20000 files here).
//! The parent publishes one alert at a time and takes, per broadcast, the time from the
//! publish request to the last delivery (all processes stamp `CLOCK_MONOTONIC`); over ≥ 20
//! broadcasts: p50/p99, deliveries per second, server CPU per delivery (`/proc/<pid>/stat`),
//! server RSS per idle connection (`VmRSS`). The ceiling is measured in the same run with the
//! same clients: `alert-load ceiling-server` children writing one pre-encoded 300-byte frame
//! to N raw sockets (and with `--ws-ceiling` a third phase: the same servers answering the
//! WebSocket upgrade and writing one pre-encoded text frame the alert's size to the same
//! tokio-tungstenite clients). With `--hubs K --redis` the subscribers are spread over K hubcast
//! processes sharing one Redis, and every one of them must get each alert published to the
//! first. Prints a Markdown entry and adds it to BENCHMARKS.md.
//!
//! Layout: this file (flags, the run: ceiling phases, then hubcast phase), `ceiling` (the
//! ceiling server child and its phases), `hub` (hubcast and Redis children, token, publish, its phase),
//! `measure` (one phase: connect, RSS, broadcasts, CPU), `worker` + `tally` (the client
//! child and its accounting), `proto` (the line protocol), `procs` (child processes, pipes,
//! `/proc` readings, the shared clock), `report` (statistics, Markdown, BENCHMARKS.md).

mod ceiling;
mod hub;
mod measure;
mod procs;
mod proto;
mod report;
mod tally;
mod worker;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, Subcommand};

use measure::Layout;
use procs::Fleet;
use report::Run;

/// Load benchmark of hubcast's alert fan-out against a raw-socket ceiling.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    #[command(flatten)]
    run: RunArgs,
}

/// The child roles (started by the parent, hidden from help).
#[derive(Debug, Subcommand)]
enum Role {
    /// Client worker: opens subscribers, reports deliveries.
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
    /// Ceiling server: writes a fixed frame to raw sockets.
    #[command(hide = true)]
    CeilingServer(ceiling::CeilingArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.role {
        Some(Role::Worker(args)) => worker::main(args),
        Some(Role::CeilingServer(args)) => ceiling::main(&args),
        None => parent(&cli.run),
    }
}

fn parent(args: &RunArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let run = runtime.block_on(async {
        let mut fleet = Fleet::default();
        let result = tokio::select! {
            result = run(args, &mut fleet) => result,
            signal = interrupted() => Err(anyhow::anyhow!("stopped by {signal}")),
        };
        fleet.stop_all().await;
        result
    })?;
    let entry = run.markdown();
    println!("\n{entry}");
    if !args.no_write {
        let path = args.out.clone().unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../BENCHMARKS.md")
        });
        report::append(&path, &entry)?;
        eprintln!("alert-load: added to {}", path.display());
    }
    Ok(())
}

/// Resolves on SIGINT, SIGTERM or SIGHUP with the signal's name.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
    }
}

/// Most connections one process may hold here (20000 open files per process, some for the
/// process's own files).
const PER_PROCESS: usize = 19_500;

/// Flags of a run.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Subscribers in all (N).
    #[arg(long, default_value_t = 10_000)]
    pub subscribers: usize,
    /// Measured broadcasts (p50/p99 are over these).
    #[arg(long, default_value_t = 20)]
    pub broadcasts: usize,
    /// Unmeasured broadcasts first (first-touch allocations, cold caches).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// hubcast processes; more than one needs --redis.
    #[arg(long, default_value_t = 1)]
    pub hubs: usize,
    /// Run the hubs on one Redis (`alerts.backend = "redis"`), started for the run.
    #[arg(long)]
    pub redis: bool,
    /// Subscribe over Server-Sent Events (`/sse/alerts`, HTTP/1.0 readers) instead of
    /// WebSocket.
    #[arg(long)]
    pub sse: bool,
    /// Runtime threads per hub (`http.worker_threads`); 0: the hub's default (one per core).
    #[arg(long, default_value_t = 0)]
    pub hub_threads: usize,
    /// Do not measure the ceiling.
    #[arg(long)]
    pub skip_ceiling: bool,
    /// Also measure the WebSocket ceiling: the ceiling servers answer the upgrade and write
    /// one pre-encoded WebSocket text frame per broadcast, read by the same tokio-tungstenite
    /// subscribers as hubcast's (what no server can beat with these clients on this machine).
    #[arg(long, conflicts_with = "skip_ceiling")]
    pub ws_ceiling: bool,
    /// Text bytes of the WebSocket ceiling's frame [default: the size of the run's alert].
    #[arg(long, default_value_t = 562)]
    pub ws_frame_bytes: usize,
    /// Measure the ceiling only (no hubcast).
    #[arg(long, conflicts_with = "skip_ceiling")]
    pub ceiling_only: bool,
    /// The hubcast binary [default: `hubcast` next to this binary, i.e. the release build].
    #[arg(long)]
    pub hubcast: Option<PathBuf>,
    /// Client worker processes [default: enough for --per-worker, at least 2].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Most subscribers per worker process.
    #[arg(long, default_value_t = 18_000)]
    pub per_worker: usize,
    /// Bytes of the ceiling's frame.
    #[arg(long, default_value_t = 300)]
    pub frame_bytes: usize,
    /// Seconds one broadcast may take to reach everyone.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Seconds all subscribers may take to connect.
    #[arg(long, default_value_t = 300)]
    pub connect_timeout: u64,
    /// Milliseconds between broadcasts.
    #[arg(long, default_value_t = 200)]
    pub gap_ms: u64,
    /// Milliseconds of quiet after connecting, before the idle RSS is read.
    #[arg(long, default_value_t = 2000)]
    pub settle_ms: u64,
    /// Connection attempts in flight per worker.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// The clients' tungstenite read buffer, bytes.
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
    /// BENCHMARKS.md to add the entry to [default: the workspace's].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the entry only; do not touch BENCHMARKS.md.
    #[arg(long)]
    pub no_write: bool,
}

impl RunArgs {
    fn check(&self) -> anyhow::Result<()> {
        if self.subscribers == 0 || self.broadcasts == 0 || self.hubs == 0 {
            bail!("--subscribers, --broadcasts and --hubs must be at least 1");
        }
        if self.hubs > 1 && !self.redis {
            bail!(
                "--hubs {} needs --redis (the hubs share alerts through it)",
                self.hubs
            );
        }
        if self.subscribers.div_ceil(self.hubs) > PER_PROCESS {
            bail!(
                "{} subscribers on {} hub(s) is over {PER_PROCESS} per process (open-file limit); add --hubs",
                self.subscribers,
                self.hubs
            );
        }
        if self.per_worker == 0 || self.per_worker > PER_PROCESS {
            bail!("--per-worker must be between 1 and {PER_PROCESS}");
        }
        if self.broadcasts < 20 {
            eprintln!("alert-load: note: p99 over fewer than 20 broadcasts is the maximum");
        }
        Ok(())
    }

    /// Worker processes of the run.
    pub fn worker_count(&self) -> usize {
        let needed = self.subscribers.div_ceil(self.per_worker);
        self.workers.unwrap_or(needed.max(2)).max(needed).max(1)
    }

    /// The measurement layout, workers' source addresses from 127.0.0.`first_source`.
    pub fn layout(&self, first_source: u8) -> Layout {
        Layout {
            subscribers: self.subscribers,
            workers: self.worker_count(),
            first_source,
            broadcasts: self.broadcasts,
            warmup: self.warmup,
            frame_bytes: self.frame_bytes,
            concurrency: self.concurrency,
            read_buffer: self.read_buffer,
            sse: self.sse,
            connect_timeout: Duration::from_secs(self.connect_timeout),
            broadcast_timeout: Duration::from_secs(self.timeout),
            gap: Duration::from_millis(self.gap_ms),
            settle: Duration::from_millis(self.settle_ms),
        }
    }

    /// The hubcast binary.
    pub fn hubcast_binary(&self) -> anyhow::Result<PathBuf> {
        benchkit::hub_binary(self.hubcast.as_deref(), "--hubcast")
    }
}

/// Runs both phases; every child is in `fleet` (the caller stops what is left).
async fn run(args: &RunArgs, fleet: &mut Fleet) -> anyhow::Result<Run> {
    args.check()?;
    let binary = args.hubcast_binary()?;
    let mut run = Run::new(args, &binary);
    eprintln!(
        "alert-load: {} subscribers, {} hub(s){}, {} worker(s), {} broadcasts",
        args.subscribers,
        args.hubs,
        if args.redis { " on Redis" } else { "" },
        args.worker_count(),
        args.broadcasts
    );
    if !args.skip_ceiling {
        // Ceiling clients use other source addresses than the hub's, so no port of theirs is
        // still in TIME_WAIT when the hub phase connects.
        run.ceiling = Some(ceiling::phase(args, fleet).await?);
    }
    if args.ws_ceiling {
        run.ceiling_ws = Some(ceiling::ws_phase(args, fleet).await?);
    }
    if args.ceiling_only {
        return Ok(run);
    }
    let tmp = tempfile::Builder::new().prefix("alert-load-").tempdir()?;
    let result = hub::phase(args, fleet, &binary, tmp.path(), &mut run).await;
    fleet.stop_all().await;
    run.hub = Some(result?);
    Ok(run)
}
