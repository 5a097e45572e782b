//! Values in and out of a [`Store`](super::Store): [`StoredAlert`] (and the hub's
//! [`PublishedAlert`] built from it), [`Appended`], [`ArchiveQuery`], [`Page`], [`Cursor`], and
//! the bounds every request is held to.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use tiers::RegionCode;

use super::StoreError;
use crate::cap::{Alert, CapError, Status};
use crate::hub::{AlertKind, Inherited, KindSet, MsgType, PublishedAlert, Severity};

/// Largest page of [`Store::query`](super::Store::query) and batch of
/// [`Store::since`](super::Store::since): 500 alerts of a few KiB each keeps one response in
/// the low megabytes.
pub const MAX_PAGE: usize = 500;
/// Page size of an [`ArchiveQuery`] that does not say.
pub const DEFAULT_PAGE: usize = 50;
/// Longest full-text query, in characters: a search box, not a document.
pub const MAX_QUERY_CHARS: usize = 200;
/// Most whitespace-separated terms in a full-text query (each one is a join condition).
pub const MAX_QUERY_TERMS: usize = 8;

/// One numbered alert as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlert {
    /// Hub-wide sequence number, gap-free from 1.
    pub seq: u64,
    /// Public id, `/alerts/{id}.xml`: the sequence number in decimal ([`public_id`]).
    pub id: String,
    /// CAP `sender`.
    pub sender: String,
    /// CAP `identifier`.
    pub identifier: String,
    /// CAP `sent`, unix seconds.
    pub sent_unix: i64,
    /// When it stops being live ([`Alert::expires_at`]); `None`: until updated or cancelled.
    pub expires_unix: Option<i64>,
    /// Kind; a bare Cancel's is that of the first alert it references.
    pub kind: AlertKind,
    /// Gravest severity of its infos; a bare Cancel's is the gravest of what it references.
    pub severity: Severity,
    /// Alert, Update or Cancel.
    pub msg_type: MsgType,
    /// CAP `status` (Actual, Exercise, System, Test, Draft).
    pub status: Status,
    /// GB2260 codes of its own areas, in document order.
    pub regions: Vec<RegionCode>,
    /// Regions of the alerts it references (their own and inherited), sorted; empty for a
    /// plain Alert.
    pub inherited_regions: Vec<RegionCode>,
    /// The audience it inherits: each referenced alert's own areas with that alert's kind and
    /// severity, plus what that one inherited, one entry per (region, kind) with the gravest
    /// severity ([`Inherited::reduce`]). Live delivery routes an Update or Cancel with it
    /// without reading the originals back. Empty for an alert without references. For
    /// records written before it was stored, the store derives it from what they reference
    /// (SQLite schema 3's backfill; the Redis store when it reads such a record).
    pub inherited_targets: Vec<Inherited>,
    /// Sequence numbers of the alerts its `references` name, in document order.
    pub references: Vec<u64>,
    /// Who published it (the token's principal).
    pub publisher: String,
    /// When the hub received it, unix seconds.
    pub received_unix: i64,
    /// The CAP XML as normalized by [`write_xml`](crate::cap::write_xml).
    pub xml: String,
    /// The CAP JSON, compact (`serde_json::to_string` of the model).
    pub json: String,
}

impl StoredAlert {
    /// The CAP model, read back from [`StoredAlert::xml`]. Stored XML was bounded when it was
    /// written (`max_document_bytes`, 9× the body limit: normalizing grows documents), so
    /// it is read whole: the 256 KiB default meant for untrusted bodies would leave a large
    /// accepted alert out of the Redis archive index.
    pub fn alert(&self) -> Result<Alert, CapError> {
        crate::cap::read_xml(
            self.xml.as_bytes(),
            self.xml.len().max(crate::cap::DEFAULT_MAX_SIZE),
        )
    }

    /// The canonical delivery frame, built once per alert and shared by every subscriber:
    /// `{"type":"alert","seq":N,"id":"N","alert":{…CAP JSON…}}`.
    pub fn frame(&self) -> Bytes {
        let id = serde_json::Value::String(self.id.clone());
        let text = format!(
            r#"{{"type":"alert","seq":{},"id":{id},"alert":{}}}"#,
            self.seq, self.json
        );
        Bytes::from(text)
    }

    /// What the hub fans out, with the canonical [`frame`](StoredAlert::frame).
    pub fn to_published(&self) -> PublishedAlert {
        self.to_published_with(self.frame())
    }

    /// What the hub fans out, with a frame the caller serialized: its own regions, kind and
    /// severity, and the audience it inherited ([`StoredAlert::inherited_targets`]), so an
    /// Update or Cancel reaches its originals' subscribers even when the hub no longer holds
    /// them. An alert without areas and without inherited targets (nothing resolved) is
    /// routed by its inherited regions, if any.
    pub fn to_published_with(&self, frame: Bytes) -> PublishedAlert {
        let regions = self.routing_regions().to_vec();
        PublishedAlert {
            seq: self.seq,
            id: self.id.clone(),
            kind: self.kind,
            severity: self.severity,
            regions,
            msg_type: self.msg_type,
            references: self.references.clone(),
            inherited: self.inherited_targets.clone(),
            expires: self.expires_unix.map(|t| u64::try_from(t).unwrap_or(0)),
            frame,
        }
    }

    /// The regions live delivery routes this alert's own kind and severity to: its areas; or,
    /// for an alert without areas whose inherited targets are empty although it inherited
    /// regions (its references' records could not be read), those regions. The archive's
    /// target rows are built from the same (`append::insert`).
    pub fn routing_regions(&self) -> &[RegionCode] {
        if self.regions.is_empty() && self.inherited_targets.is_empty() {
            &self.inherited_regions
        } else {
            &self.regions
        }
    }

    /// Its audience, as live delivery routes it and the archive indexes it (and what an
    /// alert referencing it inherits): its [`routing_regions`](Self::routing_regions) with
    /// its own kind and severity, then its inherited targets.
    pub fn reach(&self) -> Vec<Inherited> {
        (self.routing_regions().iter())
            .map(|&region| Inherited {
                region,
                kind: self.kind,
                severity: self.severity,
            })
            .chain(self.inherited_targets.iter().copied())
            .collect()
    }

    /// Whether it is still current at `now_unix`.
    pub fn is_live_at(&self, now_unix: i64) -> bool {
        self.expires_unix.is_none_or(|t| now_unix < t)
    }
}

/// The public id of sequence number `seq`: `"42"`.
pub fn public_id(seq: u64) -> String {
    seq.to_string()
}

/// The sequence number a public id names; `None` unless it is a decimal number ≥ 1 written
/// without sign or leading zeros (one id per alert, so caches and links agree).
pub fn parse_id(id: &str) -> Option<u64> {
    let canonical = !id.is_empty() && id.len() <= 20 && !id.starts_with('0');
    if !canonical || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok().filter(|&seq| i64::try_from(seq).is_ok())
}

/// The result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The alert's sequence number.
    pub seq: u64,
    /// Its public id.
    pub id: String,
    /// False if the same alert was already stored (an idempotent re-post): do not fan it out
    /// again.
    pub created: bool,
    /// The stored record (to build the hub's [`PublishedAlert`]).
    pub alert: StoredAlert,
}

/// An archive search. Every condition given must hold; results are newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveQuery {
    /// Region subtree, both ways like the hub: alerts with a target (own area or inherited)
    /// in this region, an ancestor of it, or a descendant of it.
    pub region: Option<RegionCode>,
    /// Kinds wanted ([`KindSet::ALL`]: any; an Update or Cancel also matches by what it
    /// inherits).
    pub kinds: KindSet,
    /// Lowest severity wanted. As live delivery, an alert matches by one of its targets: its
    /// own areas with its own kind and severity, or one it inherits from the alerts it
    /// references (a Minor update of an Extreme alert is found by `min_severity=severe`).
    /// Region, kind and severity must hold for the same target, so the result is exactly
    /// what live delivery sent to the filter.
    pub min_severity: Severity,
    /// Exactly these severities (empty: any), on top of `min_severity` (also matched on what
    /// an Update or Cancel inherits).
    pub severities: Vec<Severity>,
    /// `sent` at or after, unix seconds.
    pub from: Option<i64>,
    /// `sent` before, unix seconds (exclusive).
    pub to: Option<i64>,
    /// Full-text terms, whitespace-separated, all required (see the module docs).
    pub q: Option<String>,
    /// Only alerts numbered above this one (what a live subscriber missed after the last
    /// alert it saw, with `cursor` below the oldest one still replayable).
    pub after: Option<u64>,
    /// Where the previous page ended.
    pub cursor: Option<Cursor>,
    /// Page size, 1..=[`MAX_PAGE`].
    pub limit: usize,
}

impl Default for ArchiveQuery {
    fn default() -> Self {
        ArchiveQuery {
            region: None,
            kinds: KindSet::ALL,
            min_severity: Severity::Unknown,
            severities: Vec::new(),
            from: None,
            to: None,
            q: None,
            after: None,
            cursor: None,
            limit: DEFAULT_PAGE,
        }
    }
}

/// One page of archive results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Matching alerts, newest (highest sequence number) first, as a listing needs them: every
    /// field but the documents. `xml` is empty and `json` holds only `sent` and
    /// `info[0].headline` (a page never loads whole documents; fetch one by its id for that).
    pub items: Vec<StoredAlert>,
    /// Pass this as [`ArchiveQuery::cursor`] for the next page; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

/// An opaque archive position: the next page holds alerts numbered below it. Keyset
/// pagination: alerts stored after the first page was read have higher numbers and never
/// shift, repeat or hide later pages. Written as URL-safe base64 (`Display`), read back with
/// `FromStr`, which rejects anything this store did not issue.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    below: u64,
}

const CURSOR_PREFIX: &str = "c1:";

impl Cursor {
    /// The cursor for "alerts numbered below `seq`".
    pub fn below(seq: u64) -> Cursor {
        Cursor { below: seq }
    }

    /// The sequence number this page starts below.
    pub fn seq(self) -> u64 {
        self.below
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{CURSOR_PREFIX}{}", self.below);
        f.write_str(&URL_SAFE_NO_PAD.encode(text))
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cursor(below {})", self.below)
    }
}

impl FromStr for Cursor {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Cursor, StoreError> {
        if s.is_empty() || s.len() > 40 {
            return Err(StoreError::BadCursor);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| StoreError::BadCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| StoreError::BadCursor)?;
        let seq = text
            .strip_prefix(CURSOR_PREFIX)
            .and_then(parse_id)
            .ok_or(StoreError::BadCursor)?;
        Ok(Cursor::below(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_anything_else() {
        for seq in [1, 42, 1 << 40] {
            let c = Cursor::below(seq);
            let text = c.to_string();
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            );
            assert_eq!(text.parse::<Cursor>().expect("own cursor"), c);
        }
        let foreign = URL_SAFE_NO_PAD.encode("c1:007");
        for bad in ["", "!!!", "YWJj", &foreign, &"A".repeat(100)] {
            assert!(
                matches!(bad.parse::<Cursor>(), Err(StoreError::BadCursor)),
                "{bad}"
            );
        }
    }

    #[test]
    fn public_ids_are_canonical_decimal() {
        assert_eq!(parse_id(&public_id(42)), Some(42));
        for bad in ["", "0", "042", "+4", "4a", "99999999999999999999"] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
    }
}
