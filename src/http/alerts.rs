//! Publishing and reading single alerts: `POST /api/v1/alerts` (CAP 1.2 XML or its JSON form,
//! bearer token, answered only once the store committed) and `GET /alerts/{id}.xml` /
//! `GET /alerts/{id}.json` (public). The archive query is `alerts_archive`.
//!
//! # Publish: each step and its answer
//! 1. bearer token ([`Authenticated`]): 401;
//! 2. `Content-Type` `application/cap+xml`, `application/xml`, `text/xml` or
//!    `application/json` (a `charset`, if given, UTF-8): 415 `unsupported_media_type`;
//! 3. at most `alerts.max_body_bytes` (by `Content-Length`, or counted while reading): 413
//!    `too_large`; the body must arrive within `http.header_read_timeout_secs`: 408 `timeout`;
//! 4. reading (`cap::read_xml` / `cap::read_json`): not well-formed, DTD (XXE, billion laughs),
//!    undeclared entity, not CAP → 400 `bad_cap`; schema problems (element unknown, missing,
//!    repeated, out of order; enumeration; dateTime) → 422 `invalid_cap`;
//! 5. `cap::validate`: 422 `invalid_cap` listing every problem; `Ack`/`Error` messages are not
//!    published: 422 `invalid_cap` on `alert/msgType`;
//! 6. `tiers::authorize(PublishAlert)` on every region of its areas: 403 `forbidden`; the CAP
//!    `sender` must be the publisher's region's: listed in `alerts.senders` for another
//!    region, 403 `sender_not_yours`;
//! 7. on a blocking thread, `Store::append`, in one transaction (`alerts::store::Publisher`):
//!    a sender another region published under first → 403 `sender_not_yours`; each
//!    `references` triple is resolved (an Update or Cancel naming an unknown alert: 422
//!    `unknown_reference`) and `PublishAlert` is asked of every region the referenced alerts
//!    reach, the very regions the new one then inherits (a county can neither update nor
//!    cancel its city's alert: 403 `forbidden`); new → 201; same (sender, identifier) and same
//!    content → 200 with the existing record; same pair, different content → 409 `conflict`. Body
//!    `{"id","seq","created"}`, header `Location: /alerts/{id}.xml`. A new alert is then
//!    handed to live delivery (`alerts_live`) from the same blocking thread, after the commit.
//!
//! Errors of steps 4–5 carry `"problems": [{"path","kind","message"}]` (CAP element paths such
//! as `alert/info[0]/severity`) next to `error` and `message` (see `alerts_error`).

use std::sync::Arc;
use std::time::Duration;

use alerts::cap::{self, Alert};
use alerts::store::{Appended, Publisher, SenderRule, Store, StoreError, parse_id};
use axum::Json;
use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::State;

use super::extract::ApiPath;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde_json::json;
use tiers::{Action, Denied, Principal, RegionCode, RegionTree, authorize};
use tokio::time::{Instant, timeout_at};

use super::alerts_error::{
    AlertError, alerts_state, not_public, not_public_at, read_store, store_error,
};
use super::{ApiError, AppState, Authenticated};

/// The alert store and the publishing limits, as the HTTP layer holds them.
#[derive(Debug, Clone)]
pub struct AlertsState {
    /// The durable alert log.
    pub store: Arc<dyn Store>,
    /// Largest publish body (`alerts.max_body_bytes`).
    pub max_body_bytes: usize,
    /// Live delivery (the hub task), fed after each commit.
    pub live: crate::alerts_live::LiveHub,
    /// The `alerts` settings (live-delivery timers and bounds).
    pub config: crate::config::AlertsConfig,
    /// Public store reads and feed renderings running or waiting at once
    /// (`alerts.max_concurrent_reads`; beyond, 503 `busy`).
    pub public_reads: Arc<tokio::sync::Semaphore>,
    /// Per-IP connection rate limit of the live endpoints.
    pub connect_limiter: std::sync::Arc<crate::rate_limit::ConnectLimiter>,
    /// Rendered Atom feeds, and the lane feed renders take one at a time.
    pub feeds: std::sync::Arc<super::alerts_feed::FeedCache>,
    /// The Redis log follower (`alerts.backend = "redis"`), kept for the life of the hub.
    pub tail: Option<Arc<crate::alerts_live::Tail>>,
}

/// Most bytes read and discarded after a body went over the limit, so that the 413 reaches a
/// client still sending (closing a socket with unread data resets the connection under the
/// answer). Beyond it the connection is closed.
const DRAIN_MAX: usize = 1024 * 1024;
/// How long the discarding may take.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// The two body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Xml,
    Json,
}

/// The format `Content-Type` announces, or 415.
fn body_format(headers: &HeaderMap) -> Result<Format, AlertError> {
    let value = headers.get(header::CONTENT_TYPE).map(|v| v.to_str());
    let text = match value {
        None => "(none)",
        Some(Ok(text)) => text,
        Some(Err(_)) => "(not ASCII)",
    };
    let unsupported = || {
        let message = format!(
            "Content-Type {text:?}: send application/cap+xml, application/xml or \
             application/json, in UTF-8"
        );
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    };
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    for param in parts {
        if let Some((key, value)) = param.split_once('=')
            && key.trim().eq_ignore_ascii_case("charset")
        {
            let charset = value.trim().trim_matches('"').to_ascii_lowercase();
            if charset != "utf-8" && charset != "utf8" {
                return Err(unsupported().into());
            }
        }
    }
    match essence.as_str() {
        "application/cap+xml" | "application/xml" | "text/xml" => Ok(Format::Xml),
        "application/json" => Ok(Format::Json),
        _ => Err(unsupported().into()),
    }
}

/// Reads at most `limit` bytes of body before `deadline`: 413 `too_large` naming `what` (the
/// setting or rule that sets the limit), from `Content-Length` alone when it declares more,
/// after draining what the client is still sending; 408 `timeout` past the deadline.
pub(super) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    what: &str,
    deadline: Instant,
) -> Result<Bytes, AlertError> {
    let declared = (headers.get(header::CONTENT_LENGTH))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let too_large = |size: String| -> AlertError {
        let message = format!("the body is {size} bytes, over {what} = {limit}");
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message).into()
    };
    let mut stream = body.into_data_stream();
    if let Some(size) = declared
        && size > limit as u64
    {
        if size <= (limit + DRAIN_MAX) as u64 {
            drain(&mut stream).await;
        }
        return Err(too_large(size.to_string()));
    }
    let capacity = declared.map_or(0, |n| usize::try_from(n).unwrap_or(limit));
    let mut buf = Vec::with_capacity(capacity.min(limit));
    loop {
        let next = timeout_at(deadline, stream.next()).await.map_err(|_| {
            let message = "the body did not arrive within http.header_read_timeout_secs";
            ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", message)
        })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| ApiError::bad_request("bad_body", format!("{e}")))?;
        if buf.len() + chunk.len() > limit {
            drain(&mut stream).await;
            return Err(too_large(format!("more than {limit}")));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Reads and discards up to [`DRAIN_MAX`] bytes for up to [`DRAIN_TIME`].
async fn drain(stream: &mut BodyDataStream) {
    let deadline = Instant::now() + DRAIN_TIME;
    let mut left = DRAIN_MAX;
    while let Ok(Some(Ok(chunk))) = timeout_at(deadline, stream.next()).await {
        left = left.saturating_sub(chunk.len());
        if left == 0 {
            break;
        }
    }
}

/// Reads and validates the alert (steps 4–5).
fn read_alert(bytes: &[u8], format: Format, limit: usize) -> Result<Alert, AlertError> {
    let alert = match format {
        Format::Xml => cap::read_xml(bytes, limit),
        Format::Json => cap::read_json(bytes, limit),
    }
    .map_err(|e| AlertError::cap(&e))?;
    alert
        .validate()
        .map_err(|errors| AlertError::invalid(&errors))?;
    if let Err(refused) = alerts::hub::MsgType::try_from(alert.msg_type) {
        return Err(not_public(refused.to_string()));
    }
    // Everything published here goes to the public, unauthenticated: live streams, Atom,
    // archive, `/alerts/{id}.xml`.
    if alert.scope != cap::Scope::Public {
        return Err(not_public_at(
            "alert/scope",
            format!(
                "scope {} is for a limited audience; this hub publishes to the public (scope Public)",
                alert.scope.as_str()
            ),
        ));
    }
    if alert.status == cap::Status::Draft {
        let reason = "a Draft is a template, not actionable (CAP 1.2 status); publish it as Actual, Exercise, System or Test";
        return Err(not_public_at("alert/status", reason.to_owned()));
    }
    Ok(alert)
}

/// `PublishAlert` on every region in `regions`.
fn check_publish<'a>(
    tree: &RegionTree,
    who: &Principal,
    regions: impl IntoIterator<Item = &'a RegionCode>,
) -> Result<(), Denied> {
    regions
        .into_iter()
        .try_for_each(|&region| authorize(tree, who, Action::PublishAlert, region))
}

/// What the store keeps as the publisher: role, region and subject, within the store's
/// 256-byte bound.
fn publisher_label(who: &Principal) -> String {
    let mut label = format!("{}@{} {}", who.role, who.region, who.subject);
    while label.len() > 256 {
        label.pop();
    }
    label
}

/// Step 7: the append, which resolves the references and asks `PublishAlert` of every region
/// they reach inside its own transaction (so what the alert inherits is what was checked).
fn publish_blocking(
    tree: &RegionTree,
    store: &dyn Store,
    who: &Principal,
    rule: SenderRule,
    alert: &Alert,
    raw: &str,
    now: i64,
) -> Result<Appended, StoreError> {
    let label = publisher_label(who);
    let may_reach = |region| authorize(tree, who, Action::PublishAlert, region).is_ok();
    let publisher = Publisher {
        label: &label,
        region: who.region,
        rule,
        may_reach: Some(&may_reach),
    };
    store.append(alert, raw, &publisher, now)
}

/// How the store checks the alert's `sender`: bound to the region `alerts.senders` names
/// (403 `sender_not_yours` at once for any other region), else to its first publisher's.
fn sender_rule(
    config: &crate::config::AlertsConfig,
    sender: &str,
    who: &Principal,
) -> Result<SenderRule, AlertError> {
    match config.senders.get(sender) {
        None => Ok(SenderRule::FirstUse),
        Some(&owner) if owner == who.region => Ok(SenderRule::Configured),
        Some(&owner) => Err(store_error(&StoreError::SenderTaken {
            sender: sender.to_owned(),
            owner,
        })),
    }
}

/// `POST /api/v1/alerts`.
pub async fn publish(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AlertError> {
    if let Some(meeting) = &who.meeting {
        let message =
            format!("this token is for meeting {meeting:?} only, not for publishing alerts");
        return Err(ApiError::forbidden(message).into());
    }
    let alerts = alerts_state(&state)?.clone();
    let format = body_format(&headers)?;
    let deadline = Instant::now() + Duration::from_secs(state.http().header_read_timeout_secs);
    let limit = alerts.max_body_bytes;
    let bytes = read_body(body, &headers, limit, "alerts.max_body_bytes", deadline).await?;
    let alert = read_alert(&bytes, format, limit)?;
    let regions = alert.regions().map_err(|e| AlertError::cap(&e))?;
    if let Some(err) = alert.unknown_region(|code| state.regions().get(code).is_some()) {
        return Err(AlertError::cap(&err));
    }
    check_publish(state.regions(), &who, &regions)?;
    let rule = sender_rule(&alerts.config, &alert.sender, &who)?;

    // Both readers accepted the body, so it is UTF-8; kept as received for audit.
    let raw = String::from_utf8(Vec::from(bytes))
        .map_err(|_| ApiError::bad_request("bad_body", "the body is not UTF-8"))?;
    let now = i64::try_from(crate::clock::unix_now()).unwrap_or(i64::MAX);
    let task_state = state.clone();
    let task = tokio::task::spawn_blocking(move || {
        let tree = task_state.regions();
        let store = alerts.store.as_ref();
        let appended = publish_blocking(tree, store, &who, rule, &alert, &raw, now)?;
        // Committed: hand it to live delivery from this thread, which runs to completion even
        // if the request is cancelled. A re-post (not created) is not fanned out again.
        if appended.created {
            alerts.live.publish_blocking(appended.alert.to_published());
        }
        Ok((appended, who))
    });
    let (appended, who) = match task.await {
        Ok(Ok(done)) => done,
        Ok(Err(err)) => return Err(store_error(&err)),
        Err(join) => return Err(ApiError::internal(&join).into()),
    };
    tracing::info!(
        id = %appended.id,
        created = appended.created,
        kind = %appended.alert.kind,
        publisher = %who.subject,
        "alert published"
    );
    let status = match appended.created {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    let location = format!("/alerts/{}.xml", appended.id);
    let body = json!({ "id": appended.id, "seq": appended.seq, "created": appended.created });
    Ok((status, [(header::LOCATION, location)], Json(body)).into_response())
}

/// `GET /alerts/{id}.xml` (the stored CAP XML) and `GET /alerts/{id}.json` (its JSON form).
pub async fn get_alert(
    State(state): State<AppState>,
    ApiPath(file): ApiPath<String>,
) -> Result<Response, AlertError> {
    let not_found = || -> AlertError {
        let shown: String = file.chars().take(40).collect();
        ApiError::not_found(format!(
            "no alert {shown:?} (paths look like /alerts/42.xml)"
        ))
        .into()
    };
    let (id, ext) = file.rsplit_once('.').ok_or_else(not_found)?;
    let format = match ext {
        "xml" => Format::Xml,
        "json" => Format::Json,
        _ => return Err(not_found()),
    };
    let seq = parse_id(id).ok_or_else(not_found)?;
    let stored = read_store(alerts_state(&state)?, move |store| store.get(seq)).await?;
    let stored = stored
        .ok_or_else(|| AlertError::from(ApiError::not_found(format!("no alert numbered {seq}"))))?;
    let (content_type, text) = match format {
        Format::Xml => ("application/cap+xml; charset=utf-8", stored.xml),
        Format::Json => ("application/json", stored.json),
    };
    // Stored alerts never change (updates are new alerts), so caches may keep them a while.
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "public, max-age=300"),
    ];
    Ok((headers, text).into_response())
}
