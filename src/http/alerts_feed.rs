//! `GET /feeds/alerts.atom?region=&kind=&min_severity=`: an Atom 1.0 (RFC 4287) index of the
//! alerts currently live (not expired, cancelled or superseded) about a region subtree, the
//! pattern public alert aggregators ingest. Public; `region` defaults to the tree's root.
//!
//! Each entry: `id` `urn:hubcast:alert:<id>`, `title` the first info's headline (or the
//! event), `updated` the CAP `sent` (already RFC 3339), `category term=<kind>`, and
//! `link rel="alternate" type="application/cap+xml" href="/alerts/<id>.xml"`. Entries are
//! newest first, at most `alerts.feed_entries` (500) of them; the feed's `related` link is the
//! archive query for the same region, which has the rest. Feed `updated` is the latest
//! entry's (by instant, whatever the offsets), or the Unix epoch for an empty feed.
//!
//! Feeds are rendered one at a time and kept per filter until the live set changes
//! ([`FeedCache`], at most 256 feeds and 32 MiB): aggregators polling the same feed cost one
//! copy of the live set each, not a parse and render, and a flood of feed requests holds one
//! public-read place, not all.

use std::fmt::Write as _;

use alerts::cap::CapDateTime;
use alerts::hub::PublishedAlert;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::alerts_error::{AlertError, alerts_state, public_place, public_work_in};
use super::alerts_live::parse_live;
use super::{ApiError, AppState};
use crate::alerts_live::LiveVersion;

/// `GET /feeds/alerts.atom`.
pub async fn atom(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, AlertError> {
    let query = query.map(|Query(mut pairs)| {
        if !pairs.iter().any(|(name, _)| name == "region") {
            pairs.push(("region".to_owned(), state.regions().root().to_string()));
        }
        Query(pairs)
    });
    let query = parse_live(query, &state)?;
    let subsystem = alerts_state(&state)?;
    // One feed at a time: a flood of feed requests waits here, taking one public-read place
    // at most, so archive and alert reads go on beside it.
    let Ok(mut lane) = tokio::time::timeout(FEED_WAIT, subsystem.feeds.lock()).await else {
        return Err(ApiError::busy("too many feed requests at once; retry in a second").into());
    };
    let place = public_place(subsystem)?;
    let rendered = lane.get(&query.filter).map(|(version, _)| *version);
    let newest = subsystem.config.feed_entries;
    let live = subsystem
        .live
        .live_alerts(query.filter, rendered, newest)
        .await;
    let Some((version, alerts)) = live else {
        let why = "live delivery is stopped";
        return Err(ApiError::busy(why).into());
    };
    let cached = lane.get(&query.filter).map(|(_, body)| body.clone());
    let body = match (alerts, cached) {
        // Unchanged since the last render: the hub task copied nothing.
        (None, Some(body)) => body,
        (alerts, _) => {
            let alerts = alerts.unwrap_or_default();
            // Up to `alerts.feed_entries` entries to parse and render: off the runtime
            // threads, and counted with the other public reads.
            let region = query.filter.region.to_string();
            let body = public_work_in(place, move || Ok(render(&region, &alerts))).await?;
            let body = axum::body::Bytes::from(body);
            // Bounded by count and by bytes: one filter per region × kinds × severity could
            // otherwise keep hundreds of large feeds.
            let kept: usize = lane.values().map(|(_, b)| b.len()).sum();
            if lane.len() >= FEEDS_KEPT || kept + body.len() > FEED_BYTES_KEPT {
                lane.clear();
            }
            lane.insert(query.filter, (version, body.clone()));
            body
        }
    };
    let headers = [
        (header::CONTENT_TYPE, "application/atom+xml; charset=utf-8"),
        (header::CACHE_CONTROL, "public, max-age=30"),
    ];
    Ok((headers, body).into_response())
}

/// Longest a feed request waits for the one in progress.
const FEED_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Bytes of rendered feeds kept (~150 of 500 entries); all are dropped when over.
const FEED_BYTES_KEPT: usize = 32 << 20;
/// Rendered feeds kept (filters: region × kinds × severity); all are dropped when full.
const FEEDS_KEPT: usize = 256;

/// Rendered feeds by filter, with the live set they show (the hub's last sequence number
/// and the entry count: the same pair is the same set); its lock is the feeds' one lane.
pub type FeedCache = tokio::sync::Mutex<
    std::collections::HashMap<alerts::hub::Filter, (LiveVersion, axum::body::Bytes)>,
>;

/// The feed document for `alerts` (newest first).
fn render(region: &str, alerts: &[PublishedAlert]) -> String {
    let entries: Vec<(Value, &PublishedAlert)> = alerts
        .iter()
        .map(|a| {
            let json = crate::alerts_live::frame::ws_body(&a.frame, a.seq);
            let frame: Value = serde_json::from_slice(json).unwrap_or(Value::Null);
            (frame, a)
        })
        .collect();
    // The latest instant, not the greatest text: `sent` keeps the offset it was written
    // with, and 09:00+08:00 is earlier than 02:00-00:00.
    let updated = entries
        .iter()
        .filter_map(|(frame, _)| frame["alert"]["sent"].as_str())
        .filter_map(|sent| Some((sent.parse::<CapDateTime>().ok()?.unix_seconds(), sent)))
        .max_by_key(|&(unix, _)| unix)
        .map_or("1970-01-01T00:00:00Z", |(_, sent)| sent);
    let mut out = String::with_capacity(512 + 512 * entries.len());
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    let _ = writeln!(out, "  <id>urn:hubcast:feed:alerts:{}</id>", escape(region));
    let _ = writeln!(
        out,
        "  <title>hubcast live alerts {}</title>",
        escape(region)
    );
    let _ = writeln!(out, "  <updated>{}</updated>", escape(updated));
    out.push_str("  <author><name>hubcast</name></author>\n");
    let _ = writeln!(
        out,
        "  <link rel=\"self\" href=\"/feeds/alerts.atom?region={}\"/>",
        escape(region)
    );
    // The feed lists the newest live alerts (`alerts.feed_entries`); the archive has them all.
    let _ = writeln!(
        out,
        "  <link rel=\"related\" type=\"application/json\" href=\"/api/v1/alerts?region={}\"/>",
        escape(region)
    );
    for (frame, alert) in &entries {
        let info = &frame["alert"]["info"][0];
        let title = (info["headline"].as_str())
            .or_else(|| info["event"].as_str())
            .unwrap_or("alert");
        let sent = frame["alert"]["sent"].as_str().unwrap_or(updated);
        let id = escape(&alert.id);
        out.push_str("  <entry>\n");
        let _ = writeln!(out, "    <id>urn:hubcast:alert:{id}</id>");
        let _ = writeln!(out, "    <title>{}</title>", escape(title));
        let _ = writeln!(out, "    <updated>{}</updated>", escape(sent));
        let _ = writeln!(out, "    <category term=\"{}\"/>", alert.kind.as_str());
        let _ = writeln!(
            out,
            "    <link rel=\"alternate\" type=\"application/cap+xml\" href=\"/alerts/{id}.xml\"/>"
        );
        if let Some(summary) = info["description"].as_str() {
            let _ = writeln!(out, "    <summary>{}</summary>", escape(summary));
        }
        out.push_str("  </entry>\n");
    }
    out.push_str("</feed>\n");
    out
}

/// XML text and attribute escaping.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_renders_an_empty_feed() {
        assert_eq!(
            escape(r#"<a & "b">'"#),
            "&lt;a &amp; &quot;b&quot;&gt;&apos;"
        );
        let feed = render("330100", &[]);
        assert!(
            feed.contains("<updated>1970-01-01T00:00:00Z</updated>"),
            "{feed}"
        );
        assert!(!feed.contains("<entry>"));
    }

    #[test]
    fn the_feed_is_updated_at_the_latest_instant_whatever_the_offsets() {
        let frame = |sent: &str, headline: &str| {
            let json = format!(
                r#"{{"type":"alert","alert":{{"sent":"{sent}","info":[{{"headline":"{headline}"}}]}}}}"#
            );
            bytes::Bytes::from(json)
        };
        // 09:00+08:00 is 01:00 UTC; 02:00-00:00 is an hour later, though smaller as text.
        let alerts = [
            crate::alerts_live::frame::test_alert(2, frame("2025-07-01T09:00:00+08:00", "东")),
            crate::alerts_live::frame::test_alert(1, frame("2025-07-01T02:00:00-00:00", "西")),
        ];
        let feed = render("330100", &alerts);
        let head = &feed[..feed.find("<entry>").expect("entries")];
        assert!(
            head.contains("<updated>2025-07-01T02:00:00-00:00</updated>"),
            "{feed}"
        );
        assert!(feed.contains("<updated>2025-07-01T09:00:00+08:00</updated>"));
        assert!(feed.contains("<title>东</title>") && feed.contains("<title>西</title>"));
    }
}
