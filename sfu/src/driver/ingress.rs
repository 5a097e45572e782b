//! The shared UDP socket's receiving side: one `recvmmsg` reads up to [`RECV_BATCH`]
//! datagrams into buffers owned by the receiving thread, each is demultiplexed (STUN USERNAME,
//! then remote address; `demux`), and every worker that got any receives them as one
//! [`Batch`]: one channel message per worker per receive call, whatever the datagram count.
//!
//! Batches are pooled: a worker hands each one back through a return channel once it has fed
//! the datagrams to its sessions, and the receiver refills it, so the steady state allocates
//! nothing per datagram nor per batch. Each worker has its own bounded set of batches
//! (`SfuConfig::ingress_batches`), so one stalled worker cannot starve the others.
//!
//! Full behaviour: when a worker has all its batches queued (none came back yet) or its inbox
//! is full, the datagrams for it from that receive call are dropped and counted as
//! `hubcast_sfu_dropped_packets_total{reason="queue_full"}`, like a full socket buffer; the
//! sender's retransmission and congestion control (NACK, TWCC) handle it as loss.

use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};

use super::demux::{AddrTable, UfragTable};
use super::metrics::{DropReason, SfuMetrics};
use super::net::MAX_DATAGRAM;
use super::worker::WorkerMsg;

/// Most datagrams read by one `recvmmsg` (as many as one `sendmmsg` sends).
pub(crate) const RECV_BATCH: usize = 32;
/// One receive buffer: a byte more than the largest accepted datagram, so a larger one is
/// seen as such instead of silently truncated.
const SLOT: usize = MAX_DATAGRAM + 1;
/// How often a blocked receive wakes to check for shutdown.
const POLL: Duration = Duration::from_millis(200);
/// Forget addresses of ended sessions this often.
const ADDR_SWEEP: Duration = Duration::from_secs(5);

/// Datagrams for one worker from one receive call, packed back to back in one buffer.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The worker it belongs to (it returns to that worker's pool).
    worker: usize,
    /// When the receive call that read these datagrams returned.
    pub at: Instant,
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

/// One datagram of a batch: its bytes end at `end` and start where the previous one ended.
#[derive(Debug, Clone, Copy)]
struct Entry {
    session: u64,
    source: SocketAddr,
    end: usize,
}

impl Batch {
    fn new(worker: usize) -> Self {
        Batch {
            worker,
            at: Instant::now(),
            bytes: Vec::with_capacity(4 * MAX_DATAGRAM),
            entries: Vec::with_capacity(RECV_BATCH),
        }
    }

    /// Appends a datagram for `session`. Grows the buffers only until they have held the
    /// largest batch seen (at most [`RECV_BATCH`] datagrams of [`MAX_DATAGRAM`] bytes).
    fn push(&mut self, session: u64, source: SocketAddr, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        self.entries.push(Entry {
            session,
            source,
            end: self.bytes.len(),
        });
    }

    /// Datagrams in the batch.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Each datagram as (session, remote address, bytes), in arrival order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, SocketAddr, &[u8])> + '_ {
        let mut start = 0;
        self.entries.iter().map(move |e| {
            let data = self.bytes.get(start..e.end).unwrap_or_default();
            start = e.end;
            (e.session, e.source, data)
        })
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
    }
}

/// Where a worker sends batches it is done with.
pub(crate) type Recycler = SyncSender<Batch>;

/// Hands a processed batch back to the receiver for reuse. The return channel holds every
/// batch that can exist, so this never blocks; after shutdown the batch is just freed.
pub(crate) fn recycle(recycler: &Recycler, batch: Batch) {
    let _ = recycler.try_send(batch);
}

/// The receiver's side of the pool: free batches per worker, how many each worker has, and
/// the channel they come back on.
#[derive(Debug)]
pub(crate) struct Pool {
    free: Vec<Vec<Batch>>,
    created: Vec<usize>,
    per_worker: usize,
    returned: Receiver<Batch>,
}

impl Pool {
    /// A pool of at most `per_worker` batches for each of `workers` workers, created on first
    /// use; `Recycler` is what the workers send them back with.
    pub(crate) fn new(workers: usize, per_worker: usize) -> (Self, Recycler) {
        let per_worker = per_worker.max(1);
        let (tx, rx) = std::sync::mpsc::sync_channel(workers.saturating_mul(per_worker));
        let pool = Pool {
            free: (0..workers).map(|_| Vec::new()).collect(),
            created: vec![0; workers],
            per_worker,
            returned: rx,
        };
        (pool, tx)
    }

    /// Takes back what the workers returned.
    fn reclaim(&mut self) {
        while let Ok(batch) = self.returned.try_recv() {
            self.put(batch);
        }
    }

    /// An empty batch for `worker`, or `None` when all of that worker's batches are out.
    fn take(&mut self, worker: usize) -> Option<Batch> {
        if let Some(batch) = self.free.get_mut(worker)?.pop() {
            return Some(batch);
        }
        let created = self.created.get_mut(worker)?;
        if *created >= self.per_worker {
            return None;
        }
        *created += 1;
        Some(Batch::new(worker))
    }

    /// Puts a batch back on its worker's free list.
    fn put(&mut self, mut batch: Batch) {
        batch.clear();
        if let Some(free) = self.free.get_mut(batch.worker) {
            free.push(batch);
        }
    }
}

/// One datagram as read: its length, sender, and whether the kernel truncated it.
#[derive(Debug, Clone, Copy)]
struct Got {
    len: usize,
    source: Option<SocketAddr>,
    truncated: bool,
}

/// Reads up to [`RECV_BATCH`] datagrams: blocks for the first (up to the socket's read
/// timeout), then takes whatever else is already queued. Returns how many `got` holds.
fn receive(
    socket: &UdpSocket,
    headers: &mut MultiHeaders<SockaddrStorage>,
    buffers: &mut [u8],
    got: &mut [Got; RECV_BATCH],
) -> nix::Result<usize> {
    use std::os::fd::AsRawFd as _;
    let mut slots = buffers.chunks_exact_mut(SLOT);
    let mut iovs: [[IoSliceMut<'_>; 1]; RECV_BATCH] =
        std::array::from_fn(|_| [IoSliceMut::new(slots.next().unwrap_or_default())]);
    let results = recvmmsg(
        socket.as_raw_fd(),
        headers,
        iovs.iter_mut(),
        MsgFlags::MSG_WAITFORONE,
        None,
    )?;
    let mut n = 0;
    for (slot, msg) in got.iter_mut().zip(results) {
        *slot = Got {
            len: msg.bytes,
            source: msg.address.as_ref().and_then(socket_addr),
            truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
        };
        n += 1;
    }
    Ok(n)
}

fn socket_addr(storage: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    storage.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

/// Receives on the shared UDP socket until `stop`, routing each datagram to its worker in
/// per-worker batches taken from `pool`.
pub(crate) fn udp_receive_loop(
    socket: &UdpSocket,
    workers: &[SyncSender<WorkerMsg>],
    ufrags: &UfragTable,
    metrics: &SfuMetrics,
    stop: &AtomicBool,
    mut pool: Pool,
) {
    let _ = socket.set_read_timeout(Some(POLL));
    let mut table = AddrTable::default();
    let mut buffers = vec![0u8; RECV_BATCH * SLOT];
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(RECV_BATCH, None);
    let mut got = [Got {
        len: 0,
        source: None,
        truncated: false,
    }; RECV_BATCH];
    let mut filling: Vec<Option<Batch>> = workers.iter().map(|_| None).collect();
    let mut last_sweep = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let n = match receive(socket, &mut headers, &mut buffers, &mut got) {
            Ok(n) => n,
            Err(Errno::EAGAIN | Errno::EINTR) => continue,
            Err(err) => {
                tracing::debug!(error = %err, "UDP receive error");
                continue;
            }
        };
        let at = Instant::now();
        // Entries only accumulate while datagrams arrive: sweeping here, on the receive
        // time already taken, is enough.
        if at.duration_since(last_sweep) > ADDR_SWEEP {
            table.retain_live(ufrags);
            last_sweep = at;
        }
        pool.reclaim();
        for (i, g) in got.iter().take(n).enumerate() {
            if g.len > MAX_DATAGRAM || g.truncated {
                metrics.dropped(DropReason::Oversize);
                continue;
            }
            let (Some(source), Some(data)) = (g.source, buffers.get(i * SLOT..i * SLOT + g.len))
            else {
                metrics.dropped(DropReason::UnknownSender);
                continue;
            };
            let route = match table.route(source, data, ufrags, at).into_route() {
                Ok(route) => route,
                Err(why) => {
                    metrics.dropped(why);
                    continue;
                }
            };
            let Some(slot) = filling.get_mut(route.worker) else {
                continue;
            };
            if slot.is_none() {
                *slot = pool.take(route.worker);
            }
            match slot {
                Some(batch) => batch.push(route.session, source, data),
                None => metrics.dropped(DropReason::QueueFull),
            }
        }
        for (worker, slot) in workers.iter().zip(filling.iter_mut()) {
            let Some(mut batch) = slot.take() else {
                continue;
            };
            batch.at = at;
            match worker.try_send(WorkerMsg::Batch(batch)) {
                Ok(()) => {}
                Err(TrySendError::Full(msg)) => {
                    if let WorkerMsg::Batch(batch) = msg {
                        metrics.dropped_many(DropReason::QueueFull, batch.len());
                        pool.put(batch);
                    }
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        // After the batch: the datagrams for the new session first.
        tell_orphans(&mut table, workers);
    }
}

/// Tells their workers of the sessions `table` left with no address (rare: a restarted
/// client's session took a silent one's last address), so they end them. A full inbox: told
/// on the next call.
pub(super) fn tell_orphans(table: &mut AddrTable, workers: &[SyncSender<WorkerMsg>]) {
    while let Some(orphan) = table.take_orphan() {
        if let Some(worker) = workers.get(orphan.worker)
            && let Err(TrySendError::Full(_)) = worker.try_send(WorkerMsg::Orphaned(orphan.session))
        {
            table.keep_orphan(orphan);
            return;
        }
    }
}

#[cfg(test)]
#[path = "ingress_tests.rs"]
pub(super) mod tests;
