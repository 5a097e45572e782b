//! Tests of the UDP receiving side: batches keep datagrams apart, the pool is bounded per
//! worker and reuses what comes back, and the real loop on a loopback socket routes by STUN
//! USERNAME then address, counts unknown senders and oversize datagrams, and drops (counting
//! `queue_full`) when a worker has all its batches out.

use std::sync::Arc;
use std::sync::mpsc::Receiver;

use super::*;

/// How long a step may take: generous, since CI runs hundreds of tests on two cores and the
/// receiving thread can wait for a CPU (a lost datagram still fails, only later).
const WAIT: Duration = Duration::from_secs(10);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn a_batch_keeps_datagrams_apart_and_in_order() {
    let mut batch = Batch::new(0);
    batch.push(7, addr(2), b"first");
    batch.push(8, addr(3), b"");
    batch.push(7, addr(2), b"third!");
    let seen: Vec<(u64, SocketAddr, Vec<u8>)> =
        batch.iter().map(|(s, a, d)| (s, a, d.to_vec())).collect();
    assert_eq!(
        seen,
        vec![
            (7, addr(2), b"first".to_vec()),
            (8, addr(3), Vec::new()),
            (7, addr(2), b"third!".to_vec()),
        ]
    );
    batch.clear();
    assert_eq!(batch.len(), 0);
}

#[test]
fn the_pool_is_bounded_per_worker_and_reuses_returned_batches() {
    let (mut pool, recycler) = Pool::new(2, 2);
    let a = pool.take(0).expect("first");
    let b = pool.take(0).expect("second");
    assert!(pool.take(0).is_none(), "worker 0 has all its batches out");
    assert!(
        pool.take(1).is_some(),
        "worker 1 is not starved by worker 0"
    );
    assert!(pool.take(5).is_none(), "no such worker");
    let mut a = a;
    a.push(1, addr(2), b"x");
    let capacity = a.bytes.capacity();
    recycle(&recycler, a);
    assert!(pool.take(0).is_none(), "not back until reclaimed");
    pool.reclaim();
    let again = pool.take(0).expect("returned batch");
    assert_eq!(again.len(), 0, "cleared for reuse");
    assert_eq!(again.bytes.capacity(), capacity, "its buffer is kept");
    drop(b);
}

/// A STUN binding request whose USERNAME is `username` (RFC 8489 § 14.3).
pub(in crate::driver) fn binding_request(username: &str) -> Vec<u8> {
    let mut attr = vec![0x00, 0x06];
    attr.extend_from_slice(&u16::try_from(username.len()).expect("short").to_be_bytes());
    attr.extend_from_slice(username.as_bytes());
    while attr.len() % 4 != 0 {
        attr.push(0);
    }
    let mut msg = vec![0x00, 0x01];
    msg.extend_from_slice(&u16::try_from(attr.len()).expect("short").to_be_bytes());
    msg.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    msg.extend_from_slice(&[7; 12]);
    msg.extend_from_slice(&attr);
    msg
}

/// The receiving loop on a real loopback socket, one worker whose inbox the test reads.
struct Harness {
    client: UdpSocket,
    server: SocketAddr,
    inbox: Receiver<WorkerMsg>,
    recycler: Recycler,
    metrics: SfuMetrics,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Harness {
    fn start(batches_per_worker: usize) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind server");
        let server = socket.local_addr().expect("server address");
        let client = UdpSocket::bind("127.0.0.1:0").expect("bind client");
        let metrics = SfuMetrics::new(&prometheus::Registry::new()).expect("metrics");
        let ufrags = UfragTable::default();
        let route = super::super::demux::Route {
            worker: 0,
            session: 42,
        };
        ufrags.insert("srvA", route);
        let other = super::super::demux::Route {
            worker: 0,
            session: 43,
        };
        ufrags.insert("srvB", other);
        let (tx, inbox) = std::sync::mpsc::sync_channel(64);
        let (pool, recycler) = Pool::new(1, batches_per_worker);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (metrics, stop) = (metrics.clone(), stop.clone());
            std::thread::spawn(move || {
                udp_receive_loop(&socket, &[tx], &ufrags, &metrics, &stop, pool);
            })
        };
        Harness {
            client,
            server,
            inbox,
            recycler,
            metrics,
            stop,
            thread: Some(thread),
        }
    }

    fn send(&self, data: &[u8]) {
        self.client.send_to(data, self.server).expect("send");
    }

    /// The next batch the worker gets, within [`WAIT`].
    fn batch(&self) -> Batch {
        match self.inbox.recv_timeout(WAIT) {
            Ok(WorkerMsg::Batch(batch)) => batch,
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    fn dropped(&self, reason: &str) -> u64 {
        self.metrics
            .dropped_packets
            .with_label_values(&[reason])
            .get()
    }

    /// Waits until `reason` has counted `n` drops.
    fn wait_dropped(&self, reason: &str, n: u64) {
        let deadline = Instant::now() + WAIT;
        while self.dropped(reason) < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(self.dropped(reason), n, "{reason}");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn routes_by_username_then_address_and_counts_what_it_drops() {
    // Five packets follow the STUN request. Each may come in its own receive call, and this
    // thread may recycle batches late (CI runs on two busy cores): with six batches the pool
    // never runs dry here, so any drop below is a routing fault, not the pool's bound (which
    // the next test covers).
    const PACKETS: u8 = 5;
    let h = Harness::start(usize::from(PACKETS) + 1);
    h.send(&[0x80, 0x60, 0, 1]);
    h.wait_dropped("unknown_sender", 1);
    h.send(&vec![0x80; MAX_DATAGRAM + 500]);
    h.wait_dropped("oversize", 1);
    let stun = binding_request("srvA:cli");
    h.send(&stun);
    let first = h.batch();
    let seen: Vec<(u64, Vec<u8>)> = first.iter().map(|(s, _, d)| (s, d.to_vec())).collect();
    assert_eq!(seen, vec![(42, stun)]);
    recycle(&h.recycler, first);
    // The address is known now: plain SRTP from it is routed, in order, possibly batched.
    let packets: Vec<Vec<u8>> = (0..PACKETS).map(|i| vec![0x80, 0x60, 0, i, 9]).collect();
    for p in &packets {
        h.send(p);
    }
    let mut got = Vec::new();
    while got.len() < packets.len() {
        let batch = h.batch();
        got.extend(batch.iter().map(|(s, a, d)| {
            assert_eq!((s, a), (42, h.client.local_addr().expect("client")));
            d.to_vec()
        }));
        recycle(&h.recycler, batch);
    }
    assert_eq!(got, packets);
    assert_eq!(h.dropped("queue_full"), 0);
    // A STUN request naming another session from this address, whose session was just
    // heard from: refused and counted (`demux` tests when it is let through).
    h.send(&binding_request("srvB:cli"));
    h.wait_dropped("address_in_use", 1);
    let after = vec![0x80, 0x60, 0, 9, 9];
    h.send(&after);
    let batch = h.batch();
    let seen: Vec<(u64, Vec<u8>)> = batch.iter().map(|(s, _, d)| (s, d.to_vec())).collect();
    assert_eq!(seen, vec![(42, after)], "still the first session's");
    recycle(&h.recycler, batch);
}

#[test]
fn a_worker_with_every_batch_out_loses_datagrams_until_one_comes_back() {
    let h = Harness::start(2);
    h.send(&binding_request("srvA:cli"));
    let a = h.batch();
    h.send(&[0x80, 0x60, 0, 1]);
    let b = h.batch();
    // Both batches are with the worker: the next datagram has nowhere to go.
    h.send(&[0x80, 0x60, 0, 2]);
    h.wait_dropped("queue_full", 1);
    assert!(h.inbox.try_recv().is_err(), "nothing was queued");
    recycle(&h.recycler, a);
    h.send(&[0x80, 0x60, 0, 3]);
    let c = h.batch();
    assert_eq!(
        c.iter().map(|(_, _, d)| d.to_vec()).collect::<Vec<_>>(),
        vec![vec![0x80, 0x60, 0, 3]]
    );
    drop((b, c));
}
