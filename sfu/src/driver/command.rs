//! Commands from the HTTP side, run on the worker that owns the room: creating a session from
//! an SDP offer (placing its room), ending one, trickle ICE and ICE restarts (`PATCH`), layer
//! choice and room descriptions. Nothing here runs per packet.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use str0m::IceCreds;

use super::api::{SessionCreated, SessionKind, SessionRef, SessionRequest, SfuError};
use super::demux::Route;
use super::events::{RoomEvent, notify};
use super::metrics::SessionEnd;
use super::room::RoomSlot;
use super::session::{self, Session};
use super::worker::Worker;

/// A reply channel (answered from this thread, awaited on the async side).
pub(crate) type Reply<T> = tokio::sync::oneshot::Sender<Result<T, SfuError>>;

/// Commands from the HTTP side.
#[derive(Debug)]
pub(crate) enum Command {
    Create {
        id: u64,
        req: SessionRequest,
        reply: Reply<SessionCreated>,
    },
    End {
        target: SessionRef,
        reply: Reply<()>,
    },
    SetLayer {
        target: SessionRef,
        choice: super::api::LayerChoice,
        reply: Reply<()>,
    },
    Room {
        room: String,
        reply: Reply<super::api::RoomInfo>,
    },
    /// WHIP/WHEP `PATCH`: trickle candidates or an ICE restart (RFC 9725 § 4.3).
    Patch {
        target: SessionRef,
        frag: String,
        if_match: super::api::IfMatch,
        reply: Reply<Option<super::api::RestartAnswer>>,
    },
    /// Tests: the worker says it holds (`holding`), then waits for `release`, so its inbox
    /// can be filled.
    #[cfg(test)]
    Hold {
        holding: std::sync::mpsc::Sender<()>,
        release: std::sync::mpsc::Receiver<()>,
    },
}

impl Worker {
    pub(crate) fn handle_command(&mut self, cmd: Command) {
        match cmd {
            #[cfg(test)]
            Command::Hold { holding, release } => {
                let _ = holding.send(());
                let _ = release.recv();
            }
            Command::Create { id, req, reply } => {
                let room = req.room.clone();
                let result = self.create(id, req);
                // Counted in flight since it was routed here: the room is forgotten if this
                // create made nothing and no other holds it.
                if let Ok(mut placement) = self.shared.placement.lock() {
                    let hosted = self.rooms.contains_key(room.as_str());
                    placement.created(&room, self.index, hosted);
                }
                let _ = reply.send(result);
            }
            Command::End { target, reply } => {
                let allowed = self.check_access(&target);
                if allowed.is_ok() {
                    self.remove_session(target.id, SessionEnd::Deleted);
                }
                let _ = reply.send(allowed);
            }
            Command::SetLayer {
                target,
                choice,
                reply,
            } => {
                let result = self
                    .check_access(&target)
                    .and_then(|()| self.set_layer(target.id, choice));
                let _ = reply.send(result);
            }
            Command::Room { room, reply } => {
                let _ = reply.send(self.room_info(&room));
            }
            Command::Patch {
                target,
                frag,
                if_match,
                reply,
            } => {
                let result = self
                    .check_access(&target)
                    .and_then(|()| self.patch(target.id, &frag, &if_match));
                self.flush();
                let _ = reply.send(result);
            }
        }
    }

    /// Whether `target.subject` may act on the session `target` names: it must exist in that
    /// room with the named kind (else "no such session", revealing nothing), and be the
    /// asker's own unless the asker moderates the room.
    fn check_access(&self, target: &SessionRef) -> Result<(), SfuError> {
        let Some(session) = self.sessions.get(&target.id) else {
            return Err(SfuError::NoSuchSession);
        };
        let publish = session.kind == SessionKind::Publish;
        if *session.room != *target.room || publish != target.publish {
            return Err(SfuError::NoSuchSession);
        }
        if target.moderator || session.label == target.subject {
            Ok(())
        } else {
            Err(SfuError::NotYours)
        }
    }

    fn create(&mut self, id: u64, req: SessionRequest) -> Result<SessionCreated, SfuError> {
        let config = &self.shared.config;
        if let SessionKind::Play(super::api::PlaySource::Publisher(publisher)) = req.kind {
            let ok = self
                .sessions
                .get(&publisher)
                .is_some_and(|s| s.kind == SessionKind::Publish && &*s.room == req.room.as_str());
            if !ok {
                return Err(SfuError::NoSuchPublisher);
            }
        }
        let in_room = self
            .rooms
            .get(req.room.as_str())
            .map_or(0, RoomSlot::session_count);
        if in_room >= config.max_peers_per_room {
            return Err(SfuError::Full("peers in this room"));
        }
        if !self.shared.peer_slots.take() {
            return Err(SfuError::Full("peers on this node"));
        }
        let created = self.create_in_slot(id, req);
        if created.is_err() {
            self.shared.peer_slots.give_back();
        }
        created
    }

    /// The rest of [`Worker::create`], once a node-wide peer slot is taken.
    fn create_in_slot(&mut self, id: u64, req: SessionRequest) -> Result<SessionCreated, SfuError> {
        let config = &self.shared.config;
        let now = Instant::now();
        let creds = local_creds(id, 0);
        let ufrag = creds.ufrag.clone();
        let (rtc, answer) = session::accept(
            config,
            &req.kind,
            &req.offer,
            creds,
            self.shared.udp_addr,
            self.shared.tcp_addr,
            now,
        )?;
        let pts = Session::negotiated_pts(&rtc, &answer);
        // A viewer of one publisher that cannot decode what it sends would get no video at
        // all: 406 naming both, not a silent session.
        if let SessionKind::Play(super::api::PlaySource::Publisher(publisher)) = &req.kind
            && let Some(sends) = self
                .sessions
                .get(publisher)
                .and_then(Session::sent_video_codec)
            && Session::negotiates_video(&pts)
            && pts[sends as usize].is_none()
        {
            return Err(SfuError::CodecMismatch(format!(
                "the publisher sends {sends:?}; this offer's video takes none of it"
            )));
        }
        let room: Arc<str> = match self.rooms.get_key_value(req.room.as_str()) {
            Some((key, _)) => key.clone(),
            None => {
                // Placed for this create (counted in flight, so never released meanwhile).
                let claimed = match self.shared.placement.lock() {
                    Ok(mut placement) => placement.claim(&req.room, self.index),
                    Err(_) => false,
                };
                if !claimed {
                    return Err(SfuError::Busy);
                }
                let key: Arc<str> = Arc::from(req.room.as_str());
                self.rooms
                    .insert(key.clone(), RoomSlot::new(&self.shared.config));
                key
            }
        };
        let session = Session {
            id,
            room: room.clone(),
            kind: req.kind.clone(),
            label: req.label,
            ufrag: ufrag.clone(),
            rtc,
            created: now,
            connected: false,
            next_timeout: now,
            rx: crate::core::IdMap::default(),
            failed: false,
            tracks: HashMap::new(),
            layers: HashMap::new(),
            announced: Vec::new(),
            rids_seen: Vec::new(),
            queued: false,
            pts,
            streams_seen: HashMap::new(),
            remote_ufrag: session::attribute(&req.offer, "ice-ufrag").unwrap_or_default(),
            candidate_lines: answer
                .lines()
                .filter(|l| l.starts_with("a=candidate:"))
                .map(str::to_owned)
                .collect(),
            trickled: 0,
            tx_audio: None,
            tx_video: None,
            layer_wanted: None,
        };
        self.sessions.insert(id, session);
        if let Some(slot) = self.rooms.get_mut(&room) {
            slot.add_session(id);
        }
        self.route_ufrag(&ufrag, id);
        self.shared.metrics.peers.inc();
        if let Some(session) = self.sessions.get(&id)
            && session.kind == SessionKind::Publish
        {
            let event = RoomEvent::PublisherJoined {
                id: id.to_string(),
                label: session.label.clone(),
            };
            notify(&self.shared.notices, &room, event);
        }
        self.mark_dirty(id);
        self.flush();
        Ok(SessionCreated {
            session: id,
            answer,
            ufrag,
        })
    }

    /// Receivers route STUN naming `ufrag` to session `id` on this worker.
    fn route_ufrag(&self, ufrag: &str, id: u64) {
        let route = Route {
            worker: self.index,
            session: id,
        };
        self.shared.ufrags.insert(ufrag, route);
    }

    /// Applies a trickle-ICE SDP fragment to session `id` (access already checked) if
    /// `if_match` names its current ICE session (its local ufrag, the entity tag). New
    /// `ice-ufrag`/`ice-pwd` mean an ICE restart: the session gets fresh local credentials
    /// (returned as the answer fragment, with our candidates); the same credentials with
    /// candidates are trickle (nothing to answer: an ICE-lite server learns the client's
    /// address from its checks anyway).
    fn patch(
        &mut self,
        id: u64,
        frag: &str,
        if_match: &super::api::IfMatch,
    ) -> Result<Option<super::api::RestartAnswer>, SfuError> {
        let Some(session) = self.sessions.get_mut(&id) else {
            return Err(SfuError::NoSuchSession);
        };
        // Candidates or credentials meant for an ICE session that was since restarted would
        // be applied to the wrong one (RFC 9725 § 4.3.1): 412.
        if !if_match.matches(&session.ufrag) {
            return Err(SfuError::IceSessionChanged);
        }
        let parsed = session::parse_frag(frag)?;
        // `parse_frag` refused a ufrag without a pwd (or the reverse) before anything changed.
        let restart = match (&parsed.ufrag, &parsed.pwd) {
            (Some(ufrag), Some(pwd)) if *ufrag != session.remote_ufrag => Some(IceCreds {
                ufrag: ufrag.clone(),
                pass: pwd.clone(),
            }),
            _ => None,
        };
        // Trickle past the cap is refused; an ICE restart past it still restarts, with the
        // candidates that fit (an ICE-lite server learns the client's addresses from its
        // checks anyway, so the rest are not missed).
        let room = session::MAX_TRICKLED.saturating_sub(session.trickled);
        if restart.is_none() && parsed.candidates.len() > room {
            return Err(SfuError::BadOffer(format!(
                "more than {} remote candidates trickled to one session",
                session::MAX_TRICKLED
            )));
        }
        for candidate in parsed.candidates.into_iter().take(room) {
            session.trickled += 1;
            session.rtc.add_remote_candidate(candidate);
        }
        let Some(remote) = restart else {
            session.queue(&mut self.dirty);
            // A restart asked again with the credentials it already brought (its 200 was lost,
            // or a 503 came after the worker applied it): the same answer again, not trickle's
            // 204, so the client learns our credentials.
            let repeated = *if_match == super::api::IfMatch::Any && parsed.pwd.is_some();
            return Ok(repeated.then(|| restart_answer(session)));
        };
        let local = local_creds(id, 0x5a5a);
        let mut api = session.rtc.direct_api();
        api.set_local_ice_credentials(local.clone());
        api.set_remote_ice_credentials(remote.clone());
        let old = std::mem::replace(&mut session.ufrag, local.ufrag.clone());
        session.remote_ufrag = remote.ufrag;
        let answer = restart_answer(session);
        session.queue(&mut self.dirty);
        // The new ufrag first: the session stays registered throughout (its addresses are
        // never up for another session to take).
        self.route_ufrag(&local.ufrag, id);
        self.shared.ufrags.remove(&old);
        Ok(Some(answer))
    }

    pub(crate) fn remove_session(&mut self, id: u64, why: SessionEnd) {
        let Some(mut session) = self.sessions.remove(&id) else {
            return;
        };
        session.rtc.disconnect();
        self.shared.ufrags.remove(&session.ufrag);
        self.shared.metrics.peers.dec();
        self.shared.peer_slots.give_back();
        self.shared.metrics.session_ended(why);
        let tracks = i64::try_from(session.announced.len()).unwrap_or(0);
        self.shared.metrics.tracks.sub(tracks);
        // One line per session end, for an operator asked why a site dropped out.
        tracing::info!(
            session = id,
            room = %session.room,
            who = %session.label,
            reason = %why.as_str(),
            connected = session.connected,
            secs = session.created.elapsed().as_secs(),
            "media session ended"
        );
        if session.kind == SessionKind::Publish {
            let event = RoomEvent::PublisherLeft { id: id.to_string() };
            notify(&self.shared.notices, &session.room, event);
        }
        let now = Instant::now();
        let empty = match self.rooms.get_mut(&session.room) {
            Some(slot) => {
                slot.remove_session(id, now);
                slot.session_count() == 0
            }
            None => false,
        };
        if empty {
            self.rooms.remove(&session.room);
            // Told before the name is released: a new meeting under it comes after this.
            notify(&self.shared.notices, &session.room, RoomEvent::RoomClosed);
            if let Ok(mut placement) = self.shared.placement.lock() {
                placement.release(&session.room, self.index);
            }
        }
        // Viewers of this publisher may need a keyframe from the next source.
        self.pump_room(&session.room);
    }
}

/// The answer to an ICE restart: our current credentials (as str0m holds them) and
/// candidates.
fn restart_answer(session: &mut Session) -> super::api::RestartAnswer {
    let local = session.rtc.direct_api().local_ice_credentials();
    let mut fragment = format!(
        "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\n",
        local.ufrag, local.pass
    );
    for line in &session.candidate_lines {
        fragment.push_str(line);
        fragment.push_str("\r\n");
    }
    super::api::RestartAnswer {
        fragment,
        ufrag: local.ufrag,
    }
}

/// Fresh local ICE credentials for session `id`: a ufrag unique on the node (`salt` varies it
/// across an ICE restart) and an unguessable password.
fn local_creds(id: u64, salt: u64) -> IceCreds {
    IceCreds {
        ufrag: format!("hc{id:x}{:08x}", random_u32(id ^ salt)),
        pass: random_password(id),
    }
}

/// `N` random bytes from the OS. Without OS randomness, a mix of `seed` and the clock:
/// unique across sessions and restarts, not secret.
fn random_bytes<const N: usize>(seed: u64) -> [u8; N] {
    let mut bytes = [0u8; N];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mix = (u64::from(nanos) ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes();
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = mix[i % 8];
        }
    }
    bytes
}

/// 32 random bits for a ufrag: the session id before them makes it unique, these make it
/// unguessable (a STUN request naming a session's ufrag makes the SFU learn its address for
/// that session).
fn random_u32(seed: u64) -> u32 {
    u32::from_le_bytes(random_bytes(seed))
}

/// An ICE password (≥ 22 characters, RFC 8839 § 5.4), unguessable: 128 random bits.
fn random_password(seed: u64) -> String {
    let bytes: [u8; 16] = random_bytes(seed);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
