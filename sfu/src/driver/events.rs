//! Room events for watchers (command-center walls, signaling): who has the floor by voice
//! (the active speaker, after the core's smoothing), who joined or left as a publisher, and
//! the room's end.
//! Workers send them on one node-wide `tokio::sync::broadcast` channel of
//! [`EVENTS_CAPACITY`]: sending never blocks a worker, and a watcher that falls that far
//! behind loses the oldest and learns it (`RecvError::Lagged`), so it re-reads the room
//! ([`crate::driver::Sfu::room`]). Events are rare (a speaker change is held for seconds by
//! the core's smoothing), nothing per packet.

use std::sync::Arc;

/// Events kept for a watcher that has not read them yet; beyond, the oldest are dropped for
/// it (and it is told).
pub const EVENTS_CAPACITY: usize = 1024;

/// Something that changed in a room.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoomEvent {
    /// The active speaker changed: a publisher's session id, or none (silence, or it left).
    Speaker {
        /// The speaking publisher's session id.
        speaker: Option<String>,
    },
    /// A publisher joined (its session was created; media follows once ICE/DTLS complete).
    PublisherJoined {
        /// Session id (for `POST /whep/{room}/{id}`).
        id: String,
        /// Its label (the token subject).
        label: String,
    },
    /// A publisher left (its session ended: deleted, timed out or closed).
    PublisherLeft {
        /// Session id.
        id: String,
    },
    /// The room's last session ended: the room is gone (the name may later be convened
    /// afresh, by anyone allowed to, as a new meeting).
    RoomClosed,
}

impl RoomEvent {
    /// Its name: the JSON `type`, and the SSE `event:` field.
    pub fn name(&self) -> &'static str {
        match self {
            RoomEvent::Speaker { .. } => "speaker",
            RoomEvent::PublisherJoined { .. } => "publisher_joined",
            RoomEvent::PublisherLeft { .. } => "publisher_left",
            RoomEvent::RoomClosed => "room_closed",
        }
    }
}

/// A [`RoomEvent`] and the room it happened in.
#[derive(Debug, Clone)]
pub struct RoomNotice {
    /// Room name.
    pub room: Arc<str>,
    /// What happened.
    pub event: RoomEvent,
}

/// The sending side, held by every worker.
pub(crate) type Notices = tokio::sync::broadcast::Sender<RoomNotice>;

/// Sends `event` for `room` to whoever watches (nobody: dropped, which is fine).
pub(crate) fn notify(notices: &Notices, room: &Arc<str>, event: RoomEvent) {
    let _ = notices.send(RoomNotice {
        room: room.clone(),
        event,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_their_type() {
        let json = |e: RoomEvent| serde_json::to_string(&e).expect("json");
        assert_eq!(
            json(RoomEvent::Speaker {
                speaker: Some("7".into())
            }),
            r#"{"type":"speaker","speaker":"7"}"#
        );
        assert_eq!(
            json(RoomEvent::Speaker { speaker: None }),
            r#"{"type":"speaker","speaker":null}"#
        );
        assert_eq!(
            json(RoomEvent::PublisherJoined {
                id: "3".into(),
                label: "a@330100".into()
            }),
            r#"{"type":"publisher_joined","id":"3","label":"a@330100"}"#
        );
        assert_eq!(
            json(RoomEvent::PublisherLeft { id: "3".into() }),
            r#"{"type":"publisher_left","id":"3"}"#
        );
        assert_eq!(json(RoomEvent::RoomClosed), r#"{"type":"room_closed"}"#);
        for event in [
            RoomEvent::Speaker { speaker: None },
            RoomEvent::PublisherJoined {
                id: "1".into(),
                label: "x".into(),
            },
            RoomEvent::PublisherLeft { id: "1".into() },
            RoomEvent::RoomClosed,
        ] {
            let value: serde_json::Value =
                serde_json::from_str(&json(event.clone())).expect("json");
            assert_eq!(value["type"], event.name(), "the name is the JSON type");
        }
    }

    #[test]
    fn a_lagging_watcher_is_told_not_blocked() {
        let (tx, mut rx) = tokio::sync::broadcast::channel(EVENTS_CAPACITY);
        let room: Arc<str> = Arc::from("r");
        for i in 0..EVENTS_CAPACITY + 10 {
            notify(&tx, &room, RoomEvent::PublisherLeft { id: i.to_string() });
        }
        assert!(matches!(
            rx.try_recv(),
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(10))
        ));
        let next = rx.try_recv().expect("the newest are kept");
        assert_eq!(next.event, RoomEvent::PublisherLeft { id: "10".into() });
    }
}
