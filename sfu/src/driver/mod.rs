//! The driver: sockets, threads and timers around the sans-IO room core.
//!
//! Layout: `config` (settings), `api` (commands and answers for the HTTP side), `net` (batched
//! UDP sends), `tcp` (passive ICE-TCP and its limits), `placement` (room → worker), `ingress` (the shared UDP socket's receiving thread:
//! `recvmmsg`, pooled per-worker batches), `demux` (datagram → session in O(1)), `worker` (one
//! thread per core owning sessions and rooms), `command` (the HTTP side's commands, run on the
//! worker), `session` (one str0m `Rtc` and SDP handling), `room` (str0m events →
//! `crate::core::Room`), `pump` (the room's output → viewers' send streams and publishers'
//! PLIs), `metrics`.
//!
//! Threads: one UDP receiver, one TCP acceptor (+ a reader and writer per ICE-TCP connection),
//! `workers` workers. A room is pinned to one worker (the least loaded when the room first
//! appears), so all its sessions, and all forwarding between them, stay on one thread: no
//! lock on the media path. Every channel
//! is bounded except the per-TCP-connection writer (bounded by the worker's output rate).

mod api;
mod command;
mod config;
mod demux;
mod events;
mod ingress;
mod local;
mod metrics;
mod net;
mod placement;
mod pump;
mod replay;
mod rfc4571;
mod room;
mod session;
mod srtp_audit;
mod tcp;
mod worker;

use placement::Placement;

pub use api::{
    IfMatch, LayerChoice, PlaySource, PublisherInfo, RestartAnswer, RoomInfo, SessionCreated,
    SessionKind, SessionRef, SessionRequest, SessionStats, SfuError, ViewerInfo,
};
pub use config::SfuConfig;
pub use demux::stun_local_ufrag;
pub use events::{EVENTS_CAPACITY, RoomEvent, RoomNotice};
pub use metrics::{DropReason, SessionEnd, SfuMetrics};
pub use session::{keep_for_retransmission, rtc_config};
pub use worker::MAX_REPOLLS;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::Duration;

use command::{Command, Reply};
use worker::{Shared, Worker, WorkerMsg};

/// How long the HTTP side waits for a worker's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Handle to the running media plane (cheap to clone).
#[derive(Debug, Clone)]
pub struct Sfu {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    workers: Arc<Vec<SyncSender<WorkerMsg>>>,
    udp_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    next_session: AtomicU64,
    /// Which worker each room lives on (consulted per command, never per packet).
    placement: Arc<std::sync::Mutex<Placement>>,
    stop: Arc<AtomicBool>,
    threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// Room events from every worker ([`Sfu::watch`]).
    notices: events::Notices,
}

/// Failure to start the media plane.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The UDP port could not be bound.
    #[error("cannot bind UDP {addr}: {source}")]
    Udp {
        /// Address tried.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A media port binds the unspecified address (all interfaces) and no public IP names
    /// what peers reach: its candidates would advertise an address nobody can send to.
    #[error("{0} binds all interfaces: set public IPs for the candidates to advertise")]
    NothingToAdvertise(SocketAddr),
    /// The ICE-TCP port could not be bound.
    #[error("cannot bind TCP {addr}: {source}")]
    Tcp {
        /// Address tried.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A thread could not be spawned or a metric registered.
    #[error("cannot start the media plane: {0}")]
    Other(String),
}

impl Sfu {
    /// Binds the sockets and starts the threads.
    pub fn start(config: &SfuConfig, registry: &prometheus::Registry) -> Result<Sfu, StartError> {
        str0m::crypto::from_feature_flags().install_process_default();
        if let Some(addr) = config.unadvertised_bind() {
            return Err(StartError::NothingToAdvertise(addr));
        }
        let socket = net::bind_udp(config.udp_listen).map_err(|source| StartError::Udp {
            addr: config.udp_listen,
            source,
        })?;
        let udp_addr = socket
            .local_addr()
            .map_err(|e| StartError::Other(e.to_string()))?;
        let tcp = match config.tcp_listen {
            Some(addr) => {
                Some(net::bind_tcp(addr).map_err(|source| StartError::Tcp { addr, source })?)
            }
            None => None,
        };
        let tcp_addr = match &tcp {
            Some(listener) => Some(
                listener
                    .local_addr()
                    .map_err(|e| StartError::Other(e.to_string()))?,
            ),
            None => None,
        };
        let metrics = SfuMetrics::new(registry).map_err(|e| StartError::Other(e.to_string()))?;
        let socket = Arc::new(socket);
        let ufrags = demux::UfragTable::default();
        let stop = Arc::new(AtomicBool::new(false));
        let placement = Arc::new(std::sync::Mutex::new(Placement::new(config.workers.max(1))));
        let (notices, _) = tokio::sync::broadcast::channel(events::EVENTS_CAPACITY);
        let (pool, recycler) = ingress::Pool::new(config.workers.max(1), config.ingress_batches);
        let shared = Shared {
            recycler,
            placement: placement.clone(),
            peer_slots: Arc::new(worker::PeerSlots::new(config.max_peers)),
            stop: stop.clone(),
            notices: notices.clone(),
            config: config.clone(),
            socket: socket.clone(),
            udp_addr,
            tcp_addr,
            local: local::LocalAddrs::new(config, udp_addr, tcp_addr),
            ufrags: ufrags.clone(),
            metrics: metrics.clone(),
        };
        let mut threads = Vec::new();
        let mut senders = Vec::new();
        for index in 0..config.workers.max(1) {
            let (tx, rx) = std::sync::mpsc::sync_channel(config.worker_queue.max(16));
            senders.push(tx);
            let shared = shared.clone();
            // Built on its own thread: a worker keeps thread-bound `sendmmsg` headers.
            threads.push(spawn(&format!("sfu-worker-{index}"), move || {
                Worker::new(index, shared).run(&rx)
            })?);
        }
        let workers = Arc::new(senders);
        {
            let workers = workers.clone();
            let ufrags = ufrags.clone();
            let metrics = metrics.clone();
            let stop = stop.clone();
            threads.push(spawn("sfu-udp-recv", move || {
                ingress::udp_receive_loop(&socket, &workers, &ufrags, &metrics, &stop, pool);
            })?);
        }
        if let Some(listener) = tcp {
            let workers = workers.clone();
            let stop = stop.clone();
            let limits = tcp::TcpLimits {
                max_connections: config.max_tcp_connections.max(1),
                connect_timeout: config.connect_timeout,
            };
            threads.push(spawn("sfu-tcp-accept", move || {
                tcp::accept_loop(&listener, &workers, &ufrags, &metrics, limits, &stop);
            })?);
        }
        tracing::info!(udp = %udp_addr, tcp = ?tcp_addr, workers = config.workers, "media plane started");
        Ok(Sfu {
            inner: Arc::new(Inner {
                workers,
                udp_addr,
                tcp_addr,
                next_session: AtomicU64::new(1),
                placement,
                stop,
                threads: std::sync::Mutex::new(threads),
                notices,
            }),
        })
    }

    /// The bound UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.inner.udp_addr
    }

    /// The bound ICE-TCP address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.inner.tcp_addr
    }

    /// Creates a publishing or playing session from an SDP offer.
    pub async fn create_session(&self, req: SessionRequest) -> Result<SessionCreated, SfuError> {
        let id = self.inner.next_session.fetch_add(1, Ordering::Relaxed);
        let room = req.room.clone();
        self.ask(&room, None, |reply| Command::Create { id, req, reply })
            .await
    }

    /// Ends a session (WHIP/WHEP `DELETE`), if `target`'s asker may ([`SessionRef`]).
    pub async fn end_session(&self, target: SessionRef) -> Result<(), SfuError> {
        let room = target.room.clone();
        self.ask(&room, Some(SfuError::NoSuchSession), |reply| Command::End {
            target,
            reply,
        })
        .await
    }

    /// Sets a viewer's preferred simulcast layer, if `target`'s asker may ([`SessionRef`]).
    pub async fn set_layer(&self, target: SessionRef, choice: LayerChoice) -> Result<(), SfuError> {
        let room = target.room.clone();
        self.ask(&room, Some(SfuError::NoSuchSession), |reply| {
            Command::SetLayer {
                target,
                choice,
                reply,
            }
        })
        .await
    }

    /// Whether `room` is placed on a worker, i.e. has (or is getting) a session; `true` when
    /// it cannot tell (a poisoned lock), so callers forgetting rooms by it stay safe. Cheap:
    /// one short lock, no round trip to the worker.
    pub fn has_room(&self, room: &str) -> bool {
        self.inner
            .placement
            .lock()
            .map_or(true, |placement| placement.lookup(room).is_some())
    }

    /// Room events of every room on this node from now on (filter by [`RoomNotice::room`]);
    /// see [`RoomEvent`] for what a watcher that falls behind is told.
    pub fn watch(&self) -> tokio::sync::broadcast::Receiver<RoomNotice> {
        self.inner.notices.subscribe()
    }

    /// Describes a room.
    pub async fn room(&self, room: &str) -> Result<RoomInfo, SfuError> {
        let room_owned = room.to_owned();
        self.ask(room, Some(SfuError::NoSuchRoom), |reply| Command::Room {
            room: room_owned,
            reply,
        })
        .await
    }

    /// Applies a WHIP/WHEP `PATCH` (trickle-ICE SDP fragment). Returns the answer fragment
    /// for an ICE restart, `None` for plain trickle.
    pub async fn patch_session(
        &self,
        target: SessionRef,
        frag: String,
        if_match: IfMatch,
    ) -> Result<Option<RestartAnswer>, SfuError> {
        let room = target.room.clone();
        self.ask(&room, Some(SfuError::NoSuchSession), |reply| {
            Command::Patch {
                target,
                frag,
                if_match,
                reply,
            }
        })
        .await
    }

    /// Stops every thread and waits for them (within ~100 ms, each worker's longest sleep):
    /// the workers end their sessions first (`shutdown` in the sessions-ended metric; room
    /// watchers are told the publishers left and the rooms closed).
    pub fn shutdown(&self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        let threads = self
            .inner
            .threads
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for handle in threads {
            let _ = handle.join();
        }
    }

    /// Sends a command to `room`'s worker and waits for the answer. Only a create places a
    /// new room; any other command for a room no worker has answers `missing` at once, so
    /// lookups of unknown or emptied rooms leave no placement behind.
    async fn ask<T>(
        &self,
        room: &str,
        missing: Option<SfuError>,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, SfuError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let creates = missing.is_none();
        let index = match (self.inner.placement.lock(), missing) {
            (Ok(mut placement), None) => {
                placement.worker_for(room).ok_or(SfuError::Full("rooms"))?
            }
            (Ok(placement), Some(missing)) => placement.lookup(room).ok_or(missing)?,
            (Err(_), _) => return Err(SfuError::Busy),
        };
        let worker = &self.inner.workers[index];
        if worker.try_send(WorkerMsg::Command(make(tx))).is_err() {
            // The worker never saw this create: it is no longer on its way (a room placed for
            // it alone is forgotten again).
            if creates && let Ok(mut placement) = self.inner.placement.lock() {
                placement.abandoned(room, index);
            }
            return Err(SfuError::Busy);
        }
        match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SfuError::Busy),
            Err(_) => Err(SfuError::Timeout(ANSWER_TIMEOUT)),
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, StartError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(|e| StartError::Other(format!("spawning {name}: {e}")))
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
