//! One subscriber's hand-off point between the hub task and its connection: the inbox the hub
//! task fills, the lock-free wake-up, and the socket the hub task may write to itself.
//!
//! # Direct writes
//! A broadcast reaches most subscribers while their connection is idle and their socket has
//! room. For those, waking the connection task only for it to write one frame costs as much as
//! the write. So a plain-TCP connection attaches its socket ([`Direct`]), and when the hub task
//! has a delivery for a subscriber whose inbox is empty and whose connection is not writing,
//! it writes the frame itself with one non-blocking `writev` of the shared bytes. Only a write
//! that does not complete falls back to the inbox: the rest of a partly written frame
//! (`Inbox::written` says how much went out) and everything after it are the connection's to
//! write, in order, with its write timeout; the hub task writes directly again only once the
//! connection has emptied the inbox ([`Mailbox::release`]).
//!
//! Writes never interleave: the hub task writes only under the inbox lock with `busy` clear;
//! the connection sets `busy` (in [`Mailbox::take`]) before it writes anything (deliveries,
//! pings, pongs, a close) and clears it in `release` only when nothing is left in the inbox.
//! TLS connections attach nothing: the hub task cannot write through rustls; they always take
//! the inbox path.

use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use alerts::hub::{Delivery, DisconnectReason};
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tokio::net::TcpStream;

/// The wire format of a directly written delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// A WebSocket text frame: a header and the alert's JSON.
    WebSocket,
    /// A Server-Sent Event: the alert's event bytes as they are.
    Sse,
}

/// A subscriber's socket the hub task may write to (plain TCP only).
#[derive(Debug, Clone)]
pub struct Direct {
    stream: Arc<TcpStream>,
    wire: Wire,
}

impl Direct {
    /// `stream` carrying `wire` frames.
    pub fn new(stream: Arc<TcpStream>, wire: Wire) -> Direct {
        Direct { stream, wire }
    }

    /// One non-blocking attempt to write alert `seq`'s frame (`event` is its shared SSE
    /// encoding): how much of it went out.
    fn try_write(&self, seq: u64, event: &Bytes) -> Attempt {
        self.try_write_from(seq, event, 0)
    }

    /// [`Direct::try_write`] of what remains of the frame after its first `skip` bytes;
    /// `Partial` counts from the frame's start.
    fn try_write_from(&self, seq: u64, event: &Bytes, skip: usize) -> Attempt {
        let (head, body) = encode(self.wire, seq, event);
        let (head, head_len) = head;
        let mut slices = [IoSlice::new(&head[..head_len]), IoSlice::new(body)];
        let total = head_len + body.len();
        let skip = skip.min(total);
        let mut rest = &mut slices[..];
        IoSlice::advance_slices(&mut rest, skip);
        if rest.is_empty() {
            return Attempt::Done;
        }
        match self.stream.try_write_vectored(rest) {
            Ok(n) if skip + n >= total => Attempt::Done,
            Ok(0) => Attempt::Blocked,
            Ok(n) => Attempt::Partial(skip + n),
            // Would block, or an error the connection task will meet on its next write.
            Err(_) => Attempt::Blocked,
        }
    }
}

/// How a delivery goes on the wire: a header (empty for SSE) and a slice of the shared event.
pub fn encode(wire: Wire, seq: u64, event: &Bytes) -> (([u8; 10], usize), &[u8]) {
    match wire {
        Wire::Sse => (([0; 10], 0), &event[..]),
        Wire::WebSocket => {
            let body = super::frame::ws_body(event, seq);
            (
                crate::wslite::frame::header(crate::wslite::frame::TEXT, body.len()),
                body,
            )
        }
    }
}

enum Attempt {
    Done,
    Partial(usize),
    Blocked,
}

/// One subscriber's inbox, shared by the hub task (fills) and its connection (takes).
#[derive(Debug, Default)]
pub struct Mailbox {
    inbox: Mutex<Inbox>,
    /// Set by the hub task when it put something in (or closed); cleared by the wait.
    pub(super) pending: AtomicBool,
    /// The connection task waiting in `Subscription::ready`.
    pub(super) waker: AtomicWaker,
}

#[derive(Debug, Default)]
struct Inbox {
    items: Vec<Delivery>,
    /// Bytes of `items[0]`'s frame the hub task already wrote.
    written: usize,
    closed: Option<DisconnectReason>,
    direct: Option<Direct>,
    /// The connection is writing (from `take` to an empty `release`): the hub task must not.
    busy: bool,
    /// The last fill stopped at the inbox's limit: the hub may hold more for this subscriber,
    /// and whoever empties the inbox asks for it (`Refill`).
    more: bool,
}

/// What [`Mailbox::take`] took.
#[derive(Debug, Default)]
pub(super) struct Taken {
    pub items: Vec<Delivery>,
    pub written: usize,
    pub closed: Option<DisconnectReason>,
    /// The hub may hold more: ask for a refill.
    pub more: bool,
}

/// What [`Mailbox::fill`] did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Filled {
    /// Deliveries written or put in the inbox.
    pub delivered: u64,
    /// Of those, written by the hub task.
    pub direct: u64,
}

impl Mailbox {
    /// Wakes the connection (lock-free; a wake before it waits is kept in `pending`).
    pub(super) fn notify(&self) {
        self.pending.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn lock(&self) -> MutexGuard<'_, Inbox> {
        // Only pushes, swaps and flag updates happen under the lock (and a non-blocking
        // write): a panic cannot leave it half-updated.
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hub task: moves deliveries from `next` (until it returns `None` or the inbox holds
    /// `limit`) to the subscriber: written directly while that completes, into the inbox after
    /// the first that does not. `on_alert` sees each alert's sequence number. Wakes the
    /// connection if the inbox got anything.
    pub(super) fn fill(
        &self,
        limit: usize,
        mut next: impl FnMut() -> Option<Delivery>,
        mut on_alert: impl FnMut(u64),
    ) -> Filled {
        let mut filled = Filled::default();
        let added = {
            let mut guard = self.lock();
            // Split borrows: the socket is borrowed, not cloned (no refcount traffic per
            // subscriber), while the inbox's other fields change.
            let inbox = &mut *guard;
            let before = inbox.items.len();
            let mut direct = match (before, inbox.busy) {
                (0, false) => inbox.direct.as_ref(),
                _ => None,
            };
            while inbox.items.len() < limit {
                let Some(delivery) = next() else { break };
                if let Delivery::Alert { seq, frame } = &delivery {
                    filled.delivered += 1;
                    on_alert(*seq);
                    if let Some(socket) = direct {
                        match socket.try_write(*seq, frame) {
                            Attempt::Done => {
                                filled.direct += 1;
                                continue;
                            }
                            Attempt::Partial(n) => inbox.written = n,
                            Attempt::Blocked => {}
                        }
                    }
                }
                // From here on the connection writes, in order.
                direct = None;
                inbox.items.push(delivery);
            }
            if inbox.items.len() >= limit {
                inbox.more = true;
            }
            inbox.items.len() > before
        };
        if added {
            self.notify();
        }
        filled
    }

    /// Hub task: the hub dropped the subscriber; the connection closes with `reason`.
    pub(super) fn close(&self, reason: DisconnectReason) {
        self.lock().closed = Some(reason);
        self.notify();
    }

    /// Connection: takes the inbox (swapping in `spare`, an empty vector) and stops the hub
    /// task's direct writes until [`release`](Mailbox::release).
    pub(super) fn take(&self, spare: Vec<Delivery>) -> Taken {
        let mut inbox = self.lock();
        inbox.busy = true;
        Taken {
            items: std::mem::replace(&mut inbox.items, spare),
            written: std::mem::take(&mut inbox.written),
            closed: inbox.closed,
            more: std::mem::take(&mut inbox.more),
        }
    }

    /// Connection: done writing; the hub task may write directly again if nothing arrived in
    /// the meantime (otherwise `pending` is set and the connection takes that first).
    pub(super) fn release(&self) {
        let mut inbox = self.lock();
        if inbox.items.is_empty() {
            inbox.busy = false;
        }
    }

    /// Connection, when woken: writes what the inbox holds to `socket` without waiting (the
    /// usual case: the socket has room), finishing a frame the hub task left half written
    /// first. What does not go out at once stays in the inbox, in order, for the awaiting
    /// path ([`take`](Mailbox::take)). Returns `Some(more)` when the inbox is empty afterwards
    /// (`more`: the hub may hold more, ask for a refill), `None` when the awaiting path must
    /// run (something left, a reset, a close, or a write already in progress). No allocation,
    /// no future: the per-delivery path when connection tasks write.
    pub(super) fn write_out(&self, socket: &Direct) -> Option<bool> {
        let mut inbox = self.lock();
        if inbox.busy || inbox.closed.is_some() {
            return None;
        }
        let mut done = 0;
        let mut skip = inbox.written;
        for item in &inbox.items {
            let Delivery::Alert { seq, frame } = item else {
                break;
            };
            match socket.try_write_from(*seq, frame, skip) {
                Attempt::Done => {
                    done += 1;
                    skip = 0;
                }
                Attempt::Partial(n) => {
                    skip = n;
                    break;
                }
                Attempt::Blocked => break,
            }
        }
        inbox.items.drain(..done);
        inbox.written = skip;
        match inbox.items.is_empty() {
            true => {
                // After a burst (a replay fills up to the hub's limit): back to the steady
                // size, not a burst's places kept for a weeks-long connection.
                if super::holds_a_burst(inbox.items.capacity()) {
                    inbox.items.shrink_to(super::KEEP_PLACES);
                }
                Some(std::mem::take(&mut inbox.more))
            }
            false => None,
        }
    }

    /// Connection: lets the hub task write to `direct` (or stops it, with `None`).
    pub(super) fn attach(&self, direct: Option<Direct>) {
        self.lock().direct = direct;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use tokio::io::AsyncReadExt as _;
    use tokio::net::TcpListener;

    use super::*;
    use crate::wslite::write_all_shared;

    /// An alert's live event (`frame::for_live`'s shape) with a payload of `len` bytes.
    fn event(seq: u64, len: usize) -> Delivery {
        let body = format!("{{\"seq\":{seq},\"pad\":\"{}\"}}", "x".repeat(len));
        let frame = Bytes::from(format!("id: {seq}\ndata: {body}\n\n"));
        Delivery::Alert { seq, frame }
    }

    /// `n` alerts, every tenth larger than a loopback segment (so writes get cut), and the
    /// bytes they make on an SSE stream, in order.
    fn burst(n: u64) -> (VecDeque<Delivery>, Vec<u8>) {
        let queue: VecDeque<Delivery> = (1..=n)
            .map(|seq| event(seq, if seq % 10 == 0 { 150_000 } else { 700 }))
            .collect();
        let expected = queue
            .iter()
            .flat_map(|d| match d {
                Delivery::Alert { frame, .. } => frame.to_vec(),
                Delivery::Reset { .. } => Vec::new(),
            })
            .collect();
        (queue, expected)
    }

    /// Reads `total` bytes from `client` in a task.
    fn read_all(mut client: TcpStream, total: usize) -> tokio::task::JoinHandle<Vec<u8>> {
        tokio::spawn(async move {
            let mut got = Vec::with_capacity(total);
            let mut buf = [0u8; 8192];
            while got.len() < total {
                let n = client.read(&mut buf).await.expect("read");
                assert!(n > 0, "closed early");
                got.extend_from_slice(&buf[..n]);
            }
            got
        })
    }

    async fn pair() -> (Arc<TcpStream>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        server
            .set_nodelay(true)
            .expect("nodelay (as the listener sets it)");
        // A small send buffer, so a burst fills the socket and direct writes stop part way
        // (loopback takes up to 64 KiB per segment, so only larger frames are cut).
        let sock = socket2::SockRef::from(&server);
        sock.set_send_buffer_size(4096).expect("sndbuf");
        (Arc::new(server), client)
    }

    #[tokio::test]
    async fn direct_writes_then_the_inbox_keep_every_frame_whole_and_in_order() {
        let (server, client) = pair().await;
        let mailbox = Mailbox::default();
        mailbox.attach(Some(Direct::new(server.clone(), Wire::Sse)));
        let (mut queue, expected) = burst(300);
        let mut seen = Vec::new();
        let filled = mailbox.fill(64, || queue.pop_front(), |seq| seen.push(seq));
        assert!(filled.direct > 0, "an idle socket is written directly");
        assert!(
            filled.delivered > filled.direct,
            "a full socket falls back to the inbox: {filled:?}"
        );
        assert_eq!(seen, (1..=filled.delivered).collect::<Vec<_>>());
        assert!(
            mailbox.pending.load(Ordering::Acquire),
            "the connection is woken"
        );

        // The reader drains while the connection side writes what the hub task could not.
        let reader = read_all(client, expected.len());
        let limit = Duration::from_secs(10);
        let mut partial = 0;
        loop {
            let taken = mailbox.take(Vec::new());
            partial += usize::from(taken.written > 0);
            let mut skip = taken.written;
            for item in &taken.items {
                let Delivery::Alert { seq, frame } = item else {
                    continue;
                };
                let ((head, head_len), body) = encode(Wire::Sse, *seq, frame);
                let mut slices = [IoSlice::new(&head[..head_len]), IoSlice::new(body)];
                let mut slices = &mut slices[..];
                IoSlice::advance_slices(&mut slices, std::mem::take(&mut skip));
                write_all_shared(&server, slices, limit)
                    .await
                    .expect("write");
            }
            // While the connection writes, the hub task only queues.
            let more = mailbox.fill(4, || queue.pop_front(), |_| {});
            assert_eq!(
                more.direct, 0,
                "no direct write while the connection is busy"
            );
            mailbox.release();
            // Idle again (if the inbox was empty): the hub task writes directly once more.
            mailbox.fill(4, || queue.pop_front(), |_| {});
            if queue.is_empty() && mailbox.lock().items.is_empty() {
                break;
            }
        }
        let got = tokio::time::timeout(limit, reader)
            .await
            .expect("reader done")
            .expect("reader");
        assert!(got == expected, "byte-exact, whole frames in order");
        assert!(
            partial > 0,
            "some frame was left half written by the hub task"
        );
    }

    #[tokio::test]
    async fn the_connection_writes_out_without_waiting_and_keeps_frames_whole() {
        let (server, client) = pair().await;
        let mailbox = Mailbox::default();
        let socket = Direct::new(server.clone(), Wire::Sse);
        // The hub task writes until the socket is full, leaving a frame half written.
        mailbox.attach(Some(socket.clone()));
        let (mut queue, expected) = burst(120);
        let reader = read_all(client, expected.len());
        let (mut settled, mut unsettled) = (0, 0);
        while !queue.is_empty() || !mailbox.lock().items.is_empty() {
            mailbox.fill(64, || queue.pop_front(), |_| {});
            // The connection, woken: writes what it can at once, never blocking.
            match mailbox.write_out(&socket) {
                Some(_) => settled += 1,
                None => {
                    unsettled += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        let got = tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .expect("reader done")
            .expect("reader");
        assert!(got == expected, "byte-exact, whole frames in order");
        assert!(settled > 0 && unsettled > 0, "{settled} / {unsettled}");
        // The burst filled the inbox to 64 places; emptied, it is back to the steady size.
        let capacity = mailbox.lock().items.capacity();
        assert!(
            capacity <= super::super::KEEP_PLACES,
            "{capacity} places kept"
        );

        // A reset, or a close, is for the awaiting path.
        let mut reset: VecDeque<Delivery> = [Delivery::Reset {
            oldest_available: 1,
        }]
        .into();
        mailbox.attach(None);
        mailbox.fill(64, || reset.pop_front(), |_| {});
        assert_eq!(mailbox.write_out(&socket), None);
        mailbox.take(Vec::new());
        mailbox.release();
        mailbox.close(DisconnectReason::SlowConsumer);
        assert_eq!(mailbox.write_out(&socket), None);
    }

    #[tokio::test]
    async fn websocket_frames_are_a_header_and_the_json_inside_the_event() {
        let (server, mut client) = pair().await;
        let mailbox = Mailbox::default();
        mailbox.attach(Some(Direct::new(server, Wire::WebSocket)));
        let mut queue: VecDeque<Delivery> = [event(7, 10), event(1000, 200)].into();
        let filled = mailbox.fill(64, || queue.pop_front(), |_| {});
        assert_eq!((filled.delivered, filled.direct), (2, 2));
        assert!(
            !mailbox.pending.load(Ordering::Acquire),
            "nothing to wake for"
        );
        let mut got = vec![0u8; 2 + 28 + 4 + 221];
        client.read_exact(&mut got).await.expect("read");
        assert_eq!(got[..2], [0x81, 28]);
        assert_eq!(&got[2..30], br#"{"seq":7,"pad":"xxxxxxxxxx"}"#);
        assert_eq!(got[30..34], [0x81, 126, 0, 221]);
        assert!(got[34..].starts_with(br#"{"seq":1000,"#) && got.ends_with(b"\"}"));
    }

    #[test]
    fn a_reset_and_a_detached_or_busy_mailbox_go_through_the_inbox() {
        let mailbox = Mailbox::default();
        let mut queue: VecDeque<Delivery> = [
            Delivery::Reset {
                oldest_available: 5,
            },
            event(5, 1),
        ]
        .into();
        let filled = mailbox.fill(64, || queue.pop_front(), |_| {});
        assert_eq!((filled.delivered, filled.direct), (1, 0));
        let taken = mailbox.take(Vec::new());
        assert_eq!(taken.items.len(), 2);
        assert_eq!(taken.written, 0);
        // Taken but not released: the next delivery waits in the inbox.
        let mut queue: VecDeque<Delivery> = [event(6, 1)].into();
        mailbox.fill(64, || queue.pop_front(), |_| {});
        mailbox.release();
        assert!(
            mailbox.lock().busy,
            "released with a non-empty inbox stays busy"
        );
        mailbox.take(Vec::new());
        mailbox.release();
        assert!(!mailbox.lock().busy);
        mailbox.close(DisconnectReason::SlowConsumer);
        assert!(mailbox.take(Vec::new()).closed.is_some());
    }
}
