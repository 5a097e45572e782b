//! The publish transaction: everything an append writes, written in one `BEGIN IMMEDIATE`
//! transaction that either commits whole (then the caller is told the sequence number) or
//! leaves nothing.
//!
//! [`Prepared::new`] does the work that needs no database (normalizing, size checks, reading
//! kind, severity, regions and references off the model) before the write lock is taken, so
//! the lock is held only for lookups and inserts. [`append`] then, under the lock:
//! 1. looks up (sender, identifier): same normalized XML → the existing record, `created:
//!    false`; different → [`StoreError::Conflict`];
//! 2. resolves each `references` triple to a stored alert (sender, identifier and `sent` must
//!    all match); an unresolved one fails an Update or Cancel ([`StoreError::UnknownReference`])
//!    and is skipped for other message types;
//! 3. numbers the alert `MAX(seq) + 1` and inserts the row, its region index rows (own, then
//!    inherited), its reference rows and its full-text row;
//! 4. commits (`synchronous=FULL`: the WAL is on disk when `commit` returns).

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tiers::RegionCode;

use super::sqlite::{COLUMNS, join_list, select, severity_from_rank};
use super::types::public_id;
use super::{Appended, StoreError, StoredAlert};
use crate::cap::{Alert, CapError, Reference, Status, write_xml};
use crate::hub::{AlertKind, MsgType, Severity};

/// Longest `publisher` (a token subject): bounded like every other input.
const MAX_PUBLISHER_BYTES: usize = 256;

/// An alert made ready to store, before the write lock.
#[derive(Debug)]
pub(super) struct Prepared {
    sender: String,
    identifier: String,
    sent_unix: i64,
    expires_unix: Option<i64>,
    /// `None` for an alert without info: inherited from its first reference.
    kind: Option<AlertKind>,
    /// `None` for an alert without info: the gravest of its references.
    severity: Option<Severity>,
    msg_type: MsgType,
    status: Status,
    regions: Vec<RegionCode>,
    references: Vec<Reference>,
    publisher: String,
    received_unix: i64,
    xml: String,
    json: String,
    raw: String,
    search_text: String,
}

impl Prepared {
    /// Normalizes `alert` and checks everything that needs no database.
    pub(super) fn new(
        alert: &Alert,
        raw: &str,
        publisher: &str,
        now_unix: i64,
        config: &super::StoreConfig,
    ) -> Result<Prepared, StoreError> {
        let msg_type = MsgType::try_from(alert.msg_type)?;
        let limit = config.max_document_bytes;
        check_size("received body", raw.len(), limit)?;
        check_size("publisher", publisher.len(), MAX_PUBLISHER_BYTES)?;
        let xml = write_xml(alert);
        check_size("normalized XML", xml.len(), limit)?;
        // The model has only string keys and plain values: serializing it cannot fail.
        let json = serde_json::to_string(alert).unwrap_or_default();
        check_size("JSON", json.len(), limit)?;
        let kind = match alert.info.is_empty() {
            true => None,
            false => Some(alert.kind()?.into()),
        };
        let references = alert.parsed_references()?;
        if kind.is_none() && references.is_empty() {
            let reason = "an alert without info takes its kind from its references; it has none";
            return Err(CapError::missing("alert/references", reason).into());
        }
        Ok(Prepared {
            sender: alert.sender.clone(),
            identifier: alert.identifier.clone(),
            sent_unix: alert.sent.unix_seconds(),
            expires_unix: alert.expires_at(),
            kind,
            severity: alert.max_severity().map(Into::into),
            msg_type,
            status: alert.status,
            regions: alert.regions()?,
            references,
            publisher: publisher.to_owned(),
            received_unix: now_unix,
            xml,
            json,
            raw: raw.to_owned(),
            search_text: search_text(alert),
        })
    }
}

fn check_size(what: &'static str, size: usize, limit: usize) -> Result<(), StoreError> {
    if size > limit {
        return Err(StoreError::TooLarge { what, size, limit });
    }
    Ok(())
}

/// The text the full-text index holds for `alert` (see the module docs of `store`).
fn search_text(alert: &Alert) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let mut fields: Vec<Option<&str>> = vec![alert.note.as_deref()];
    for info in &alert.info {
        fields.extend([
            Some(info.event.as_str()),
            info.headline.as_deref(),
            info.description.as_deref(),
        ]);
        fields.extend(info.areas.iter().map(|a| Some(a.area_desc.as_str())));
        if let Some(sc) = &info.spot_check {
            fields.extend([
                Some(sc.product_name.as_str()),
                sc.producer_name.as_deref(),
                Some(sc.sampled_name.as_str()),
                sc.brand.as_deref(),
            ]);
        }
    }
    for field in fields.into_iter().flatten() {
        let field = field.trim();
        if !field.is_empty() && !parts.contains(&field) {
            parts.push(field);
        }
    }
    parts.join("\n")
}

/// One referenced alert, as far as an append needs it.
struct Target {
    seq: i64,
    kind: AlertKind,
    severity: Severity,
}

/// Stores `p` (see the module docs for the steps).
pub(super) fn append(conn: &mut Connection, p: Prepared) -> Result<Appended, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let existing_sql =
        format!("SELECT {COLUMNS} FROM alerts a WHERE a.sender = ?1 AND a.identifier = ?2");
    if let Some(existing) = select(&tx, &existing_sql, params![p.sender, p.identifier])?.pop() {
        if existing.xml != p.xml {
            return Err(StoreError::Conflict {
                sender: p.sender,
                identifier: p.identifier,
                seq: existing.seq,
            });
        }
        return Ok(Appended {
            seq: existing.seq,
            id: existing.id.clone(),
            created: false,
            alert: existing,
        });
    }

    let targets = resolve(&tx, &p)?;
    let Some(kind) = p.kind.or_else(|| targets.first().map(|t| t.kind)) else {
        let reason = "an alert without info takes its kind from its references; none is known";
        return Err(CapError::missing("alert/references", reason).into());
    };
    let severity = (p.severity)
        .or_else(|| targets.iter().map(|t| t.severity).max())
        .unwrap_or(Severity::Unknown);
    let inherited = inherited_regions(&tx, &targets, &p.regions)?;
    let references: Vec<u64> = targets.iter().map(|t| t.seq.unsigned_abs()).collect();

    let next: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM alerts", [], |r| {
        r.get(0)
    })?;
    tx.execute(
        "INSERT INTO alerts (seq, sender, identifier, sent_unix, expires_unix, kind, severity,
             msg_type, status, regions, inherited_regions, refs, publisher, received_unix,
             xml, json, raw)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        params![
            next,
            p.sender,
            p.identifier,
            p.sent_unix,
            p.expires_unix,
            kind.as_str(),
            severity as u8,
            crate::convert::msg_type_str(p.msg_type),
            p.status.as_str(),
            join_list(&p.regions),
            join_list(&inherited),
            join_list(&references),
            p.publisher,
            p.received_unix,
            p.xml,
            p.json,
            p.raw,
        ],
    )?;
    {
        let mut region =
            tx.prepare_cached("INSERT INTO alert_regions (region, seq, own) VALUES (?1, ?2, ?3)")?;
        for r in &p.regions {
            region.execute(params![r.as_u32(), next, true])?;
        }
        for r in &inherited {
            region.execute(params![r.as_u32(), next, false])?;
        }
        let mut reference =
            tx.prepare_cached("INSERT INTO alert_references (ref_seq, seq) VALUES (?1, ?2)")?;
        for t in &targets {
            reference.execute(params![t.seq, next])?;
        }
    }
    tx.execute(
        "INSERT INTO alerts_fts (rowid, body) VALUES (?1, ?2)",
        params![next, p.search_text],
    )?;
    tx.commit()?;

    let seq = next.unsigned_abs();
    let alert = StoredAlert {
        seq,
        id: public_id(seq),
        sender: p.sender,
        identifier: p.identifier,
        sent_unix: p.sent_unix,
        expires_unix: p.expires_unix,
        kind,
        severity,
        msg_type: p.msg_type,
        status: p.status,
        regions: p.regions,
        inherited_regions: inherited,
        references,
        publisher: p.publisher,
        received_unix: p.received_unix,
        xml: p.xml,
        json: p.json,
    };
    Ok(Appended {
        seq,
        id: alert.id.clone(),
        created: true,
        alert,
    })
}

/// The stored alerts `p.references` name, each once, in document order.
fn resolve(conn: &Connection, p: &Prepared) -> Result<Vec<Target>, StoreError> {
    let must_resolve = matches!(p.msg_type, MsgType::Update | MsgType::Cancel);
    let mut stmt = conn.prepare_cached(
        "SELECT seq, sent_unix, kind, severity FROM alerts WHERE sender = ?1 AND identifier = ?2",
    )?;
    let mut targets: Vec<Target> = Vec::new();
    for r in &p.references {
        let row: Option<(i64, i64, String, i64)> = stmt
            .query_row(params![r.sender, r.identifier], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()?;
        let found = row.filter(|(_, sent, _, _)| *sent == r.sent.unix_seconds());
        let Some((seq, _, kind, severity)) = found else {
            if must_resolve {
                return Err(StoreError::UnknownReference {
                    reference: r.to_string(),
                });
            }
            continue;
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            seq: seq.unsigned_abs(),
            reason,
        };
        let kind = kind.parse().map_err(|e| corrupt(format!("{e}")))?;
        let severity =
            severity_from_rank(severity).ok_or_else(|| corrupt(format!("severity {severity}")))?;
        if !targets.iter().any(|t| t.seq == seq) {
            targets.push(Target {
                seq,
                kind,
                severity,
            });
        }
    }
    Ok(targets)
}

/// Every region (own or inherited) of the targets that is not one of `own`, sorted.
fn inherited_regions(
    conn: &Connection,
    targets: &[Target],
    own: &[RegionCode],
) -> Result<Vec<RegionCode>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT region FROM alert_regions WHERE seq = ?1")?;
    let mut out = BTreeSet::new();
    for t in targets {
        let codes = stmt.query_map(params![t.seq], |r| r.get::<_, u32>(0))?;
        for code in codes {
            let code = code?;
            let region = RegionCode::from_u32(code).map_err(|e| StoreError::Corrupt {
                seq: t.seq.unsigned_abs(),
                reason: format!("region {code}: {e}"),
            })?;
            if !own.contains(&region) {
                out.insert(region);
            }
        }
    }
    Ok(out.into_iter().collect())
}
