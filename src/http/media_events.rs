//! `GET /sse/rooms/{room}`: a room's events as Server-Sent Events, for command-center walls
//! and anything else that shows a meeting (bearer token with `WatchMeeting` on the room's
//! region, like `GET /api/v1/rooms/{room}`; a fetch-based reader sends the header).
//!
//! The stream opens with `event: room` carrying the room as `GET /api/v1/rooms/{room}`
//! answers it, then one event per change: `speaker` (`{"speaker": id|null}`, the active
//! speaker after smoothing), `publisher_joined` (`{"id","label"}`), `publisher_left`
//! (`{"id"}`), and `room_closed` when the last session leaves, after which the stream ends.
//! The watch is for that meeting: it also ends, without an event, if the room's name is
//! found convened by another region (the authorization was for the first one). A reader
//! that falls more than `sfu::driver::EVENTS_CAPACITY` events behind the node gets a fresh
//! `room` event instead of what it missed. A comment every 15 s keeps proxies from closing a
//! quiet stream. When the token that opened it stops being accepted (its `exp` plus
//! `auth.leeway_secs`), the stream sends `token_expired` and ends: a reader opens it again
//! with a fresh token. It also ends when the hub shuts down.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;

use super::extract::ApiPath;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse as _, Response};
use sfu::driver::{RoomEvent, RoomInfo, RoomNotice, Sfu, SfuError};
use tiers::RegionCode;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::{ApiError, AppState, AuthenticatedUntil};

/// Keep-alive comments on a quiet stream: below common proxy idle timeouts (60 s).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /sse/rooms/{room}`.
pub async fn room_events(
    State(state): State<AppState>,
    ApiPath(room): ApiPath<String>,
    AuthenticatedUntil(who, until): AuthenticatedUntil,
) -> Result<Response, ApiError> {
    let (sfu, region) = super::media::authorize_watch(&state, &room, &who)?;
    let left = until.saturating_sub(crate::clock::unix_now());
    let expiry = Box::pin(tokio::time::sleep(Duration::from_secs(left)));
    let sfu = sfu.clone();
    // Watching before the snapshot: a change between the two is sent after it, not lost.
    let notices = sfu.watch();
    let snapshot = room_event(sfu.room(&room).await?);
    let stop = state.shutdown().token().clone();
    let watch = Watch {
        state,
        sfu,
        room,
        region,
        notices,
        first: Some(snapshot),
        ended: false,
        expiry,
        stop,
    };
    let stream = futures_util::stream::unfold(watch, |mut watch| async move {
        let event = watch.next().await?;
        Some((Ok::<_, Infallible>(event), watch))
    });
    let keep_alive = KeepAlive::new().interval(KEEP_ALIVE).text("");
    let mut response = Sse::new(stream).keep_alive(keep_alive).into_response();
    // Not cached, and passed on by nginx (and proxies that honour it) as the events come
    // instead of filling a buffer first, as for `/sse/alerts`.
    super::alerts_sse::event_stream_headers(response.headers_mut());
    Ok(response)
}

/// The room as an event (`event: room`; serializing a `RoomInfo` cannot fail).
fn room_event(info: RoomInfo) -> Event {
    Event::default()
        .event("room")
        .json_data(info)
        .unwrap_or_default()
}

/// One reader's place in the node's events.
struct Watch {
    state: AppState,
    sfu: Sfu,
    room: String,
    /// The convening region the reader was authorized for.
    region: RegionCode,
    notices: Receiver<RoomNotice>,
    first: Option<Event>,
    /// `room_closed` or `token_expired` was sent: the stream ends.
    ended: bool,
    /// When the token that opened the stream stops being accepted.
    expiry: std::pin::Pin<Box<tokio::time::Sleep>>,
    stop: CancellationToken,
}

impl Watch {
    /// The next event for this room; `None` ends the stream (shutdown, the room closed or
    /// convened by another region, or gone after a lag).
    async fn next(&mut self) -> Option<Event> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if self.ended {
            return None;
        }
        loop {
            let notice = tokio::select! {
                () = self.stop.cancelled() => return None,
                () = &mut self.expiry => {
                    self.ended = true;
                    return Some(Event::default().event("token_expired").data("{}"));
                }
                notice = self.notices.recv() => notice,
            };
            match notice {
                Ok(notice) if *notice.room == *self.room => {
                    if notice.event == RoomEvent::RoomClosed {
                        self.ended = true;
                    } else if !self.same_meeting() {
                        return None;
                    }
                    let name = notice.event.name();
                    return Event::default().event(name).json_data(&notice.event).ok();
                }
                Ok(_) => {}
                // Behind: what was missed is gone; the room as it is now replaces it, and so
                // it does what is still buffered (older than the snapshot: replayed after it,
                // it would turn the wall's view back, or end the stream with an earlier
                // meeting's `RoomClosed`).
                Err(RecvError::Lagged(_)) => {
                    while !matches!(
                        self.notices.try_recv(),
                        Err(tokio::sync::broadcast::error::TryRecvError::Empty
                            | tokio::sync::broadcast::error::TryRecvError::Closed)
                    ) {}
                    return self.refresh().await;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Whether the room is still the meeting the reader was authorized for: convened by the
    /// same region (a closed room's name can be convened afresh by another).
    fn same_meeting(&self) -> bool {
        self.state.media_rooms().get(&self.room) == Some(self.region)
    }

    /// A fresh `room` event after a lag, if the room is still the same meeting; a busy
    /// worker is asked again (a few times), a gone room ends the stream.
    async fn refresh(&mut self) -> Option<Event> {
        for _ in 0..5 {
            if !self.same_meeting() {
                return None;
            }
            match self.sfu.room(&self.room).await {
                Ok(info) => return Some(room_event(info)),
                Err(SfuError::Busy | SfuError::Timeout(_)) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(_) => return None,
            }
        }
        None
    }
}
