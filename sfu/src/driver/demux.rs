//! Finding the peer a datagram belongs to, in O(1).
//!
//! Before ICE completes, a STUN binding request names the peer by the USERNAME attribute
//! `serverUfrag:clientUfrag` (RFC 8445 § 7.2.2); our ufrag is unique per session. Once a remote
//! address is known, the address alone routes every later packet (DTLS, SRTP, SRTCP). The
//! address table is owned by the receiving thread (no lock per packet); the ufrag table is
//! shared and only consulted for packets from addresses not yet seen.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a session lives: its worker and its id there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// Worker index.
    pub worker: usize,
    /// Session id, unique on the node.
    pub session: u64,
}

/// Sessions by our ICE ufrag, shared between workers (insert/remove) and receivers (lookup on
/// unknown addresses only).
#[derive(Debug, Clone, Default)]
pub struct UfragTable {
    inner: Arc<Mutex<Ufrags>>,
}

#[derive(Debug, Default)]
struct Ufrags {
    by_ufrag: HashMap<String, Route>,
    /// Ufrags registered per session id (one; two for a moment during an ICE restart), so
    /// whether a session is registered is one lookup, not a scan.
    per_session: HashMap<u64, u8>,
}

impl Ufrags {
    fn count(&mut self, session: u64, registered: bool) {
        let n = self.per_session.entry(session).or_default();
        if registered {
            *n = n.saturating_add(1);
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_session.remove(&session);
            }
        }
    }
}

impl UfragTable {
    /// Registers a session's ufrag.
    pub fn insert(&self, ufrag: &str, route: Route) {
        if let Ok(mut map) = self.inner.lock() {
            if let Some(old) = map.by_ufrag.insert(ufrag.to_owned(), route) {
                map.count(old.session, false);
            }
            map.count(route.session, true);
        }
    }

    /// Forgets a session.
    pub fn remove(&self, ufrag: &str) {
        if let Ok(mut map) = self.inner.lock()
            && let Some(old) = map.by_ufrag.remove(ufrag)
        {
            map.count(old.session, false);
        }
    }

    /// Ids of every registered session.
    pub fn sessions(&self) -> std::collections::HashSet<u64> {
        self.inner
            .lock()
            .map(|map| map.per_session.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Whether session `id` is still registered (true if the table cannot be read: never
    /// the reason to drop a live peer).
    pub fn has_session(&self, id: u64) -> bool {
        self.inner
            .lock()
            .map_or(true, |map| map.per_session.contains_key(&id))
    }

    /// The session whose ufrag is `ufrag`.
    pub fn get(&self, ufrag: &[u8]) -> Option<Route> {
        let ufrag = std::str::from_utf8(ufrag).ok()?;
        self.inner.lock().ok()?.by_ufrag.get(ufrag).copied()
    }

    /// The session whose ufrag is `ufrag`, and whether session `current` is still
    /// registered, under one lock.
    fn get_and_alive(&self, ufrag: &[u8], current: u64) -> (Option<Route>, bool) {
        let Ok(ufrag) = std::str::from_utf8(ufrag) else {
            return (None, true);
        };
        match self.inner.lock() {
            Ok(map) => (
                map.by_ufrag.get(ufrag).copied(),
                map.per_session.contains_key(&current),
            ),
            Err(_) => (None, true),
        }
    }
}

/// Remote addresses learnt per session. A client checks from each of its candidates (host
/// IPv4 and IPv6, server-reflexive, relay: a handful, a few more over ICE restarts and NAT
/// rebinds); beyond this the address a session heard from least lately is forgotten for its
/// newest, so the table
/// cannot grow without limit for one live session (its ufrag is unguessable: only its owner
/// can add to it, and whoever it is lets down only itself).
pub const MAX_ADDRS_PER_SESSION: usize = 16;

/// How long an address must have sent nothing to its session before a STUN request from it
/// naming another session may move it there while the first session is still registered: a
/// client restarted on the same port (an encoder bound to a fixed port, reconnecting after a
/// crash) gets through in this time instead of waiting for its old session's ICE timeout. A
/// live peer is never this quiet: it sends RTCP every second or so and an ICE consent check
/// every 5 s ± 20 % (RFC 7675), so a request forged from its address cannot take its media.
pub const QUIET_TAKEOVER: Duration = Duration::from_secs(8);

/// An address's session and when it last sent it something.
#[derive(Debug, Clone, Copy)]
struct Learnt {
    route: Route,
    heard: Instant,
}

/// Remote address → session, owned by one receiving thread.
#[derive(Debug, Default)]
pub struct AddrTable {
    routes: HashMap<SocketAddr, Learnt>,
    /// Sessions whose last address another session took: nothing can reach them any more,
    /// so their workers end them ([`AddrTable::take_orphan`]).
    orphans: Vec<Route>,
    /// Addresses learnt per session id, oldest first (at most [`MAX_ADDRS_PER_SESSION`]).
    learnt: HashMap<u64, VecDeque<SocketAddr>>,
}

/// What to do with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demuxed {
    /// Deliver to this session.
    Route(Route),
    /// Unknown sender and not a STUN request naming a session: drop (and count).
    Unknown,
    /// A STUN request naming another session from an address a live, recently heard
    /// session owns: drop (and count). Either a client reusing the port of a session it
    /// abandoned (it gets through once that one is quiet for [`QUIET_TAKEOVER`] or ends), or
    /// a request forged from a live peer's address.
    InUse,
}

impl Demuxed {
    /// The session to deliver to, or why the datagram is dropped.
    pub fn into_route(self) -> Result<Route, super::metrics::DropReason> {
        match self {
            Demuxed::Route(route) => Ok(route),
            Demuxed::Unknown => Err(super::metrics::DropReason::UnknownSender),
            Demuxed::InUse => Err(super::metrics::DropReason::AddressInUse),
        }
    }
}

impl AddrTable {
    /// Routes `datagram` from `source`, received at `now`, learning the address from a STUN
    /// USERNAME.
    pub fn route(
        &mut self,
        source: SocketAddr,
        datagram: &[u8],
        ufrags: &UfragTable,
        now: Instant,
    ) -> Demuxed {
        if let Some(known) = self.routes.get_mut(&source) {
            let route = known.route;
            // A known address may start a new session (a client reusing a port): a STUN
            // request naming another session re-routes it once the session it belonged to
            // is gone or has heard nothing from it for `QUIET_TAKEOVER`. Otherwise the
            // address stays its own: a request forged from it (naming the forger's session)
            // cannot take a live peer's media away. (One lock, two lookups: a stream of such
            // requests costs no more than others.)
            if let Some(ufrag) = stun_local_ufrag(datagram)
                && let (Some(other), current_alive) = ufrags.get_and_alive(ufrag, route.session)
                && other != route
            {
                let quiet = now.saturating_duration_since(known.heard) >= QUIET_TAKEOVER;
                if current_alive && !quiet {
                    return Demuxed::InUse;
                }
                self.forget(source, route);
                if current_alive && !self.learnt.contains_key(&route.session) {
                    self.orphans.push(route);
                }
                self.learn(source, other, now);
                return Demuxed::Route(other);
            }
            known.heard = now;
            return Demuxed::Route(route);
        }
        match stun_local_ufrag(datagram).and_then(|ufrag| ufrags.get(ufrag)) {
            Some(route) => {
                self.learn(source, route, now);
                Demuxed::Route(route)
            }
            None => Demuxed::Unknown,
        }
    }

    /// Remembers `source` for `route`, forgetting that session's oldest address when it
    /// already has its fill.
    fn learn(&mut self, source: SocketAddr, route: Route, now: Instant) {
        let learnt = self.learnt.entry(route.session).or_default();
        if learnt.len() >= MAX_ADDRS_PER_SESSION {
            // The one heard from least lately (the oldest among equals), never the address
            // its media is arriving on. Rare: only a session at its fill scans its 16.
            let heard = |a: &SocketAddr| self.routes.get(a).map(|l| l.heard);
            let stalest = (0..learnt.len()).min_by_key(|&i| heard(&learnt[i]));
            if let Some(gone) = stalest.and_then(|i| learnt.remove(i)) {
                self.routes.remove(&gone);
            }
        }
        learnt.push_back(source);
        self.routes.insert(source, Learnt { route, heard: now });
    }

    /// Forgets `source`, learnt for `route` (and the session's entry with its last address).
    fn forget(&mut self, source: SocketAddr, route: Route) {
        self.routes.remove(&source);
        if let Some(learnt) = self.learnt.get_mut(&route.session) {
            learnt.retain(|a| *a != source);
            if learnt.is_empty() {
                self.learnt.remove(&route.session);
            }
        }
    }

    /// A live session that lost its last address to another (see [`QUIET_TAKEOVER`]), if
    /// any: its peer has been silent for that long and nothing routes to it any more. (Only
    /// this table's addresses count: a session that has moved to ICE-TCP and left a stale UDP
    /// check address behind would be ended too, should another client reuse that address.)
    pub fn take_orphan(&mut self) -> Option<Route> {
        self.orphans.pop()
    }

    /// Puts back an orphan its worker could not be told about yet (inbox full).
    pub fn keep_orphan(&mut self, route: Route) {
        self.orphans.push(route);
    }

    /// Drops addresses whose session no longer exists (its ufrag was removed).
    pub fn retain_live(&mut self, ufrags: &UfragTable) {
        let live = ufrags.sessions();
        self.routes
            .retain(|_, learnt| live.contains(&learnt.route.session));
        self.learnt.retain(|session, _| live.contains(session));
    }
}

const STUN_HEADER: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;

/// Our ufrag from a STUN message's USERNAME (`ours:theirs`), if `datagram` is STUN with one.
/// Never panics; any malformed input gives `None`.
pub fn stun_local_ufrag(datagram: &[u8]) -> Option<&[u8]> {
    // RFC 7983 demultiplexing: STUN messages start with a byte 0..=3.
    if datagram.len() < STUN_HEADER || datagram[0] > 3 || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let body = datagram.get(STUN_HEADER..STUN_HEADER.checked_add(length)?)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        if kind == ATTR_USERNAME {
            let colon = value.iter().position(|&b| b == b':')?;
            return Some(&value[..colon]);
        }
        let padded = (len + 3) & !3;
        rest = rest.get(4 + padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        attr.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        msg.extend_from_slice(&MAGIC_COOKIE);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attr);
        msg
    }

    #[test]
    fn username_routes_then_address_routes() {
        let ufrags = UfragTable::default();
        let route = Route {
            worker: 1,
            session: 42,
        };
        ufrags.insert("srvA", route);
        let mut table = AddrTable::default();
        let t0 = Instant::now();
        let addr: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        assert_eq!(
            stun_local_ufrag(&binding_request("srvA:cli")),
            Some(&b"srvA"[..])
        );
        assert_eq!(
            table.route(addr, &[0x80, 0, 0, 0], &ufrags, t0),
            Demuxed::Unknown
        );
        assert_eq!(
            table.route(addr, &binding_request("srvA:cli"), &ufrags, t0),
            Demuxed::Route(route)
        );
        // Later SRTP from the same address needs no STUN.
        assert_eq!(
            table.route(addr, &[0x80, 0x60, 0, 1], &ufrags, t0),
            Demuxed::Route(route)
        );
        ufrags.remove("srvA");
        table.retain_live(&ufrags);
        assert_eq!(
            table.route(addr, &[0x80, 0x60, 0, 1], &ufrags, t0),
            Demuxed::Unknown
        );
    }

    #[test]
    fn a_live_sessions_address_is_not_taken_over_and_addresses_are_capped() {
        let ufrags = UfragTable::default();
        let victim = Route {
            worker: 0,
            session: 1,
        };
        let forger = Route {
            worker: 0,
            session: 2,
        };
        ufrags.insert("victim", victim);
        ufrags.insert("forger", forger);
        let mut table = AddrTable::default();
        let t0 = Instant::now();
        let addr: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        assert_eq!(
            table.route(addr, &binding_request("victim:c"), &ufrags, t0),
            Demuxed::Route(victim)
        );
        // A request from the victim's address naming another live session: refused, and
        // the media after it still the victim's.
        assert_eq!(
            table.route(addr, &binding_request("forger:c"), &ufrags, t0),
            Demuxed::InUse
        );
        assert_eq!(
            table.route(addr, &[0x80, 0x60, 0, 1], &ufrags, t0),
            Demuxed::Route(victim)
        );
        // Once the victim's session is gone, the address may start another one.
        ufrags.remove("victim");
        assert_eq!(
            table.route(addr, &binding_request("forger:c"), &ufrags, t0),
            Demuxed::Route(forger)
        );
        assert_eq!(
            table.route(addr, &[0x80, 0x60, 0, 1], &ufrags, t0),
            Demuxed::Route(forger)
        );
        // One session keeps at most MAX_ADDRS_PER_SESSION addresses, its newest: the
        // oldest are forgotten (here the first one and the first new ones).
        let n = MAX_ADDRS_PER_SESSION as u16 * 4;
        for port in 6000..6000 + n {
            let from = SocketAddr::from(([127, 0, 0, 1], port));
            let routed = table.route(from, &binding_request("forger:c"), &ufrags, t0);
            assert_eq!(routed, Demuxed::Route(forger));
        }
        assert_eq!(table.routes.len(), MAX_ADDRS_PER_SESSION);
        let media = [0x80, 0x60, 0, 1];
        let newest = SocketAddr::from(([127, 0, 0, 1], 6000 + n - 1));
        assert_eq!(
            table.route(newest, &media, &ufrags, t0),
            Demuxed::Route(forger)
        );
        let oldest = SocketAddr::from(([127, 0, 0, 1], 6000));
        assert_eq!(table.route(oldest, &media, &ufrags, t0), Demuxed::Unknown);
        assert_eq!(table.route(addr, &media, &ufrags, t0), Demuxed::Unknown);
        // Forgetting the session frees its places.
        ufrags.remove("forger");
        table.retain_live(&ufrags);
        assert!(table.routes.is_empty() && table.learnt.is_empty());
    }

    #[test]
    fn an_address_quiet_for_a_while_may_start_a_new_session_before_the_old_one_ends() {
        let ufrags = UfragTable::default();
        let old = Route {
            worker: 0,
            session: 1,
        };
        let new = Route {
            worker: 1,
            session: 2,
        };
        ufrags.insert("old", old);
        ufrags.insert("new", new);
        let mut table = AddrTable::default();
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let addr: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let media = [0x80, 0x60, 0, 1];
        let restart = binding_request("new:c");
        assert_eq!(
            table.route(addr, &binding_request("old:c"), &ufrags, at(0.0)),
            Demuxed::Route(old)
        );
        // Heard from 7 s ago: refused, and a refused request is no sign of life of the old
        // session (the restarted client keeps asking).
        assert_eq!(
            table.route(addr, &restart, &ufrags, at(7.0)),
            Demuxed::InUse
        );
        assert_eq!(
            table.route(addr, &restart, &ufrags, at(7.9)),
            Demuxed::InUse
        );
        // The old session's peer speaks again: quiet counts from then.
        assert_eq!(
            table.route(addr, &media, &ufrags, at(7.95)),
            Demuxed::Route(old)
        );
        assert_eq!(
            table.route(addr, &restart, &ufrags, at(15.9)),
            Demuxed::InUse
        );
        // Quiet for `QUIET_TAKEOVER`: the address moves to the new session, media with it.
        assert_eq!(table.take_orphan(), None);
        let quiet = 7.95 + QUIET_TAKEOVER.as_secs_f64();
        assert_eq!(
            table.route(addr, &restart, &ufrags, at(quiet)),
            Demuxed::Route(new)
        );
        // That was the old session's only address: its worker is to end it.
        assert_eq!(table.take_orphan(), Some(old));
        assert_eq!(table.take_orphan(), None);
        assert_eq!(
            table.route(addr, &media, &ufrags, at(quiet)),
            Demuxed::Route(new)
        );
        // And the old session no longer claims it.
        assert_eq!(
            table.route(addr, &binding_request("old:c"), &ufrags, at(quiet)),
            Demuxed::InUse
        );
    }

    #[test]
    fn a_session_at_its_fill_forgets_the_address_heard_from_least_lately() {
        let ufrags = UfragTable::default();
        let route = Route {
            worker: 0,
            session: 1,
        };
        ufrags.insert("s", route);
        let mut table = AddrTable::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let media = [0x80, 0x60, 0, 1];
        for port in 0..MAX_ADDRS_PER_SESSION as u16 {
            let routed = table.route(addr(7000 + port), &binding_request("s:c"), &ufrags, at(0));
            assert_eq!(routed, Demuxed::Route(route));
        }
        // The first address learnt carries the media; a new check address arrives.
        assert_eq!(
            table.route(addr(7000), &media, &ufrags, at(10)),
            Demuxed::Route(route)
        );
        let newest = addr(7000 + MAX_ADDRS_PER_SESSION as u16);
        assert_eq!(
            table.route(newest, &binding_request("s:c"), &ufrags, at(20)),
            Demuxed::Route(route)
        );
        assert_eq!(
            table.route(addr(7000), &media, &ufrags, at(30)),
            Demuxed::Route(route)
        );
        assert_eq!(
            table.route(addr(7001), &media, &ufrags, at(30)),
            Demuxed::Unknown
        );
    }

    #[test]
    fn malformed_stun_is_none() {
        let good = binding_request("a:b");
        for cut in 0..good.len() {
            let _ = stun_local_ufrag(&good[..cut]);
        }
        let mut lying = good.clone();
        lying[3] = 0xff; // length beyond the datagram
        assert_eq!(stun_local_ufrag(&lying), None);
        let mut attr_overflow = good;
        attr_overflow[23] = 0xff; // attribute length beyond the body
        assert_eq!(stun_local_ufrag(&attr_overflow), None);
        assert_eq!(stun_local_ufrag(&binding_request("nocolon")), None);
    }
}
