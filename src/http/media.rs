//! WHIP (RFC 9725) publish and WHEP play, plus room listing and viewer layer choice.
//!
//! `POST /whip/{room}` (offer → 201 + answer + `Location`), `DELETE` that location;
//! `POST /whep/{room}` (the floor / loudest speaker) or `/whep/{room}/{publisher}`;
//! `POST {whep location}/layer` `{"rid":"q"|"h"|"f"|"auto"}`; `GET /api/v1/rooms/{room}`.
//! Every call needs `Authorization: Bearer`; permissions come from `tiers::authorize` against
//! the room's region (the convening region: the creator's, or `?region=` within its subtree).

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Extension, State};

use super::extract::{ApiPath, ApiQuery};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sfu::driver::{
    IfMatch, LayerChoice, PlaySource, SessionCreated, SessionKind, SessionRef, SessionRequest,
    SfuError,
};
use tiers::{Action, Principal, RegionCode, authorize};

use super::media_rooms::Convened;
use super::{ApiError, AppState, Authenticated};

/// Largest WHIP/WHEP request body (an SDP offer with three simulcast layers is ~6–10 KB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Middleware of the media routes: reads the whole body within `http.header_read_timeout_secs`
/// of the request head's arrival (408 `timeout`) and at most [`MAX_BODY_BYTES`] (413
/// `too_large`), so a client trickling a body cannot hold its connection and handler open.
pub async fn bounded_body(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let limit = std::time::Duration::from_secs(state.http().header_read_timeout_secs);
    let deadline = tokio::time::Instant::now() + limit;
    let (parts, body) = request.into_parts();
    let what = "the WHIP/WHEP body limit";
    match super::alerts::read_body(body, &parts.headers, MAX_BODY_BYTES, what, deadline).await {
        Ok(bytes) => {
            let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

/// Query of `POST /whip/{room}`.
#[derive(Debug, Deserialize)]
pub struct WhipQuery {
    /// Convening region for a new room (default: the publisher's own).
    region: Option<String>,
}

/// Body of `POST …/layer`.
#[derive(Debug, Deserialize)]
pub struct LayerBody {
    rid: String,
}

impl From<SfuError> for ApiError {
    fn from(err: SfuError) -> Self {
        let (status, code) = match &err {
            SfuError::BadOffer(_) => (StatusCode::BAD_REQUEST, "bad_sdp"),
            SfuError::NoCommonCodec | SfuError::CodecMismatch(_) => {
                (StatusCode::NOT_ACCEPTABLE, "no_common_codec")
            }
            SfuError::NoSuchSession => (StatusCode::NOT_FOUND, "no_such_session"),
            SfuError::NotYours => (StatusCode::FORBIDDEN, "not_your_session"),
            SfuError::NoSuchRoom => (StatusCode::NOT_FOUND, "no_such_room"),
            SfuError::NoSuchPublisher => (StatusCode::NOT_FOUND, "no_such_publisher"),
            SfuError::Full("rooms") => (StatusCode::SERVICE_UNAVAILABLE, "room_limit"),
            SfuError::Full(_) => (StatusCode::SERVICE_UNAVAILABLE, "peer_limit"),
            SfuError::Busy | SfuError::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            SfuError::IceSessionChanged => (StatusCode::PRECONDITION_FAILED, "ice_session_changed"),
            SfuError::NoVideo => (StatusCode::CONFLICT, "no_video"),
        };
        ApiError::new(status, code, err.to_string())
    }
}

fn check_room_name(room: &str) -> Result<(), ApiError> {
    if tiers::is_room_name(room) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "bad_room",
            "room names are 1-64 characters of A-Z, a-z, 0-9, '-' and '_'",
        ))
    }
}

/// 415 unless the request's `Content-Type` is `expected` (parameters such as `charset` allowed).
fn require_content_type(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with(expected)
    {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send Content-Type: {expected}"),
        ))
    }
}

fn sdp_body(headers: &HeaderMap, body: &Bytes) -> Result<String, ApiError> {
    require_content_type(headers, "application/sdp")?;
    String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("bad_sdp", "the offer is not UTF-8"))
}

fn check_meeting_claim(who: &Principal, room: &str) -> Result<(), ApiError> {
    match &who.meeting {
        Some(meeting) if meeting != room => Err(ApiError::forbidden(format!(
            "this token is for meeting {meeting:?}, not {room:?}"
        ))),
        _ => Ok(()),
    }
}

fn sfu(state: &AppState) -> Result<&sfu::driver::Sfu, ApiError> {
    state.sfu().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "media_disabled",
            "the media plane is not running",
        )
    })
}

/// The 201 answer of a new session (logged: who opened it from where).
fn created(
    kind: &str,
    room: &str,
    created: SessionCreated,
    who: &Principal,
    client: std::net::IpAddr,
) -> Response {
    tracing::info!(
        session = %created.session,
        room = %room,
        endpoint = %kind,
        who = %who.subject,
        %client,
        "media session opened"
    );
    let location = format!("/{kind}/{room}/sessions/{}", created.session);
    let mut response = (StatusCode::CREATED, created.answer).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    // RFC 9725 § 4.3: the session takes trickle ICE and ICE restarts by PATCH.
    headers.insert(
        header::HeaderName::from_static("accept-patch"),
        HeaderValue::from_static("application/trickle-ice-sdpfrag"),
    );
    insert_etag(headers, &created.ufrag);
    response
}

/// The session's entity tag: the ICE session, named by our ufrag, quoted (RFC 9725
/// § 4.3.1). `PATCH` compares `If-Match` with it.
fn insert_etag(headers: &mut HeaderMap, ufrag: &str) {
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{ufrag}\"")) {
        headers.insert(header::ETAG, etag);
    }
}

/// `POST /whip/{room}`: publish into a room, creating it when new.
pub async fn whip(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath(room): ApiPath<String>,
    ApiQuery(query): ApiQuery<WhipQuery>,
    Authenticated(who): Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_room_name(&room)?;
    check_meeting_claim(&who, &room)?;
    let offer = sdp_body(&headers, &body)?;
    let sfu = sfu(&state)?;
    let tree = state.regions();
    // Convene only a room the SFU positively does not have: a busy or slow worker is an
    // error, not an invitation to re-label a live room with the caller's region.
    // A remembered room the SFU still places (live, or being created right now) keeps its
    // region; only one the SFU has forgotten is convened again. No round trip to a worker,
    // so a busy worker cannot make a live room look gone.
    let requested = match &query.region {
        Some(text) => super::alerts_archive::known_region(text, tree)
            .map_err(|why| ApiError::bad_request("bad_region", why))?,
        None => who.region,
    };
    let alive = |r: &str| sfu.has_room(r);
    let may_convene = |region| Ok(authorize(tree, &who, Action::ConveneMeeting, region)?);
    let now = std::time::Instant::now();
    let rooms = state.media_rooms();
    // `pending` lives until the create below has ended: dropped on success (the room is
    // placed), `failed` otherwise.
    let pending = match rooms.convene(&room, requested, now, alive, may_convene)? {
        Convened::Existing(region) => {
            authorize(tree, &who, Action::PublishMedia, region)?;
            None
        }
        Convened::New(pending) => Some(pending),
    };
    let created_session = sfu
        .create_session(SessionRequest {
            room: room.clone(),
            kind: SessionKind::Publish,
            label: who.subject.clone(),
            offer,
        })
        .await;
    match (created_session, pending) {
        (Ok(created_session), _) => {
            let client = state.client_ip(peer, &headers);
            Ok(created("whip", &room, created_session, &who, client))
        }
        (Err(err), Some(pending)) => {
            pending.failed(alive);
            Err(err.into())
        }
        (Err(err), None) => Err(err.into()),
    }
}

/// `POST /whep/{room}`: watch the room's floor / loudest speaker.
pub async fn whep_floor(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath(room): ApiPath<String>,
    auth: Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    play(state, room, PlaySource::Floor, auth, peer, &headers, &body).await
}

/// `POST /whep/{room}/{publisher}`: watch one publisher.
pub async fn whep_publisher(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath((room, publisher)): ApiPath<(String, String)>,
    auth: Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id: u64 = publisher
        .parse()
        .map_err(|_| ApiError::not_found("no such publisher in this room"))?;
    let source = PlaySource::Publisher(id);
    play(state, room, source, auth, peer, &headers, &body).await
}

/// A WHEP play from `peer` (logged as its client behind trusted proxies).
async fn play(
    state: AppState,
    room: String,
    source: PlaySource,
    Authenticated(who): Authenticated,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    check_room_name(&room)?;
    check_meeting_claim(&who, &room)?;
    let offer = sdp_body(headers, body)?;
    let region = room_region(&state, &room)?;
    authorize(state.regions(), &who, Action::WatchMeeting, region)?;
    let created_session = sfu(&state)?
        .create_session(SessionRequest {
            room: room.clone(),
            kind: SessionKind::Play(source),
            label: who.subject.clone(),
            offer,
        })
        .await?;
    let client = state.client_ip(peer, headers);
    Ok(created("whep", &room, created_session, &who, client))
}

/// 404 `no_such_room`.
fn no_such_room(room: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_room",
        format!("no room {room:?}"),
    )
}

/// The convening region of `room`, which the SFU must have (no worker round trip).
fn room_region(state: &AppState, room: &str) -> Result<RegionCode, ApiError> {
    let sfu = sfu(state)?;
    (state.media_rooms().get(room))
        .filter(|_| sfu.has_room(room))
        .ok_or_else(|| no_such_room(room))
}

/// Which endpoint a session route belongs to, attached per route by the router (a session
/// named through the other kind is not found).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/whip/…`: publish sessions.
    Whip,
    /// `/whep/…`: viewers.
    Whep,
}

/// `DELETE /whip/{room}/sessions/{id}` and `/whep/…`: end a session (the creator's own, or
/// any as a moderator of the room).
pub async fn end(
    State(state): State<AppState>,
    ApiPath((room, id)): ApiPath<(String, String)>,
    Extension(endpoint): Extension<Endpoint>,
    Authenticated(who): Authenticated,
) -> Result<StatusCode, ApiError> {
    let target = session_ref(&state, &room, &id, endpoint, &who).await?;
    sfu(&state)?.end_session(target).await?;
    Ok(StatusCode::OK)
}

/// The session a `DELETE`/`PATCH`/layer call names, with who asks: the token must be good for
/// this room (its `meeting` claim, if any), reach the room's region (`WatchMeeting`), and it
/// is a moderator if it may moderate there. The SFU then allows the creator or a moderator.
async fn session_ref(
    state: &AppState,
    room: &str,
    id: &str,
    endpoint: Endpoint,
    who: &Principal,
) -> Result<SessionRef, ApiError> {
    check_room_name(room)?;
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::from(SfuError::NoSuchSession))?;
    check_meeting_claim(who, room)?;
    // The room's region from the registry; whether the session exists (in this room, of
    // this kind) the worker answers itself.
    let region = state
        .media_rooms()
        .get(room)
        .ok_or_else(|| no_such_room(room))?;
    authorize(state.regions(), who, Action::WatchMeeting, region)?;
    let moderator = authorize(state.regions(), who, Action::ModerateMeeting, region).is_ok();
    Ok(SessionRef {
        room: room.to_owned(),
        id,
        publish: endpoint == Endpoint::Whip,
        subject: who.subject.clone(),
        moderator,
    })
}

/// `PATCH` on a session (RFC 9725 § 4.3): an `application/trickle-ice-sdpfrag` body. New
/// `ice-ufrag`/`ice-pwd` restart ICE (200 with our new credentials and candidates, and the new
/// `ETag`); the same credentials with candidates are trickle (204). An `If-Match` naming
/// another ICE session than the current one is 412 `ice_session_changed`; `*` or none match.
pub async fn patch(
    State(state): State<AppState>,
    ApiPath((room, id)): ApiPath<(String, String)>,
    Extension(endpoint): Extension<Endpoint>,
    Authenticated(who): Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_content_type(&headers, "application/trickle-ice-sdpfrag")?;
    let frag = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("bad_sdp", "the fragment is not UTF-8"))?;
    let target = session_ref(&state, &room, &id, endpoint, &who).await?;
    // Several If-Match field lines form one list (RFC 9110 § 5.3); a value that is not text
    // names no tag (matches nothing).
    let lines: Vec<&str> = (headers.get_all(header::IF_MATCH).iter())
        .map(|v| v.to_str().unwrap_or("\"\""))
        .collect();
    let joined = lines.join(", ");
    let if_match = IfMatch::parse((!lines.is_empty()).then_some(joined.as_str()));
    match sfu(&state)?.patch_session(target, frag, if_match).await? {
        Some(restart) => {
            let mut response = (StatusCode::OK, restart.fragment).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/trickle-ice-sdpfrag"),
            );
            // The restarted ICE session's tag, for the next PATCH's If-Match.
            insert_etag(headers, &restart.ufrag);
            Ok(response)
        }
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `POST /whep/{room}/sessions/{id}/layer`: choose the simulcast layer a viewer receives.
pub async fn layer(
    State(state): State<AppState>,
    ApiPath((room, id)): ApiPath<(String, String)>,
    Extension(endpoint): Extension<Endpoint>,
    Authenticated(who): Authenticated,
    body: Result<Json<LayerBody>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let bad = |why: String| ApiError::bad_request("bad_layer", why);
    let Json(body) =
        body.map_err(|e| bad(format!("the body must be {{\"rid\":…}}: {}", e.body_text())))?;
    let choice = LayerChoice::from_rid(&body.rid)
        .ok_or_else(|| bad("rid must be q, h, f or auto".to_owned()))?;
    let target = session_ref(&state, &room, &id, endpoint, &who).await?;
    sfu(&state)?.set_layer(target, choice).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/rooms/{room}`: publishers (ids for WHEP), viewers, active speaker.
pub async fn room_info(
    State(state): State<AppState>,
    ApiPath(room): ApiPath<String>,
    Authenticated(who): Authenticated,
) -> Result<Json<sfu::driver::RoomInfo>, ApiError> {
    let (sfu, _) = authorize_watch(&state, &room, &who)?;
    Ok(Json(sfu.room(&room).await?))
}

/// The checks of watching `room` (its listing, its events): a valid name, a meeting claim
/// that names it, `WatchMeeting` on its convening region. Returns the media plane and that
/// region.
pub(super) fn authorize_watch<'a>(
    state: &'a AppState,
    room: &str,
    who: &Principal,
) -> Result<(&'a sfu::driver::Sfu, RegionCode), ApiError> {
    check_room_name(room)?;
    check_meeting_claim(who, room)?;
    let region = room_region(state, room)?;
    authorize(state.regions(), who, Action::WatchMeeting, region)?;
    Ok((sfu(state)?, region))
}
