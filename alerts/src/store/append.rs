//! The publish transaction: everything an append writes, written in one `BEGIN IMMEDIATE`
//! transaction that either commits whole (then the caller is told the sequence number) or
//! leaves nothing.
//!
//! [`Prepared::new`] does the work that needs no database (normalizing, size checks, reading
//! kind, severity, regions and references off the model) before the write lock is taken, so
//! the lock is held only for lookups and inserts. [`append`] then, under the lock:
//! 1. refuses a sender owned by another region (`senders`);
//! 2. looks up (sender, identifier): same normalized XML → the existing record, `created:
//!    false`; different → [`StoreError::Conflict`];
//! 3. for an Update or Cancel, resolves each `references` triple to a stored alert (sender,
//!    identifier and `sent` must all match); an unresolved one fails the append
//!    ([`StoreError::UnknownReference`]); so does one issued for a region the publisher may not
//!    publish to ([`StoreError::NotTheIssuer`]: a county cannot supersede its city's alert
//!    about that county) or reaching such a region ([`StoreError::ReferenceOutOfReach`]), so
//!    what is inherited is exactly what was authorized. The references of an Alert, Ack or
//!    Error are kept in its document but act on nothing (CAP 1.2: only an Update supersedes,
//!    only a Cancel cancels);
//! 4. numbers the alert `MAX(seq) + 1` (or above the numbering floor a restore set) and inserts the row, its reach as target rows
//!    (region, kind, rank), its reference rows and its full-text row;
//! 5. binds the sender to the publisher's region if it was free (or config says so);
//! 6. commits (`synchronous=FULL`: the WAL is on disk when `commit` returns).

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use tiers::RegionCode;

use super::senders::{self, Publisher};
use super::sqlite::{by_identity, inherited_text, join_list, to_sql_seq};
use super::types::public_id;
use super::{Appended, StoreError, StoredAlert};
use crate::cap::{Alert, CapError, Reference, Status, write_xml};
use crate::hub::{AlertKind, Inherited, MsgType, Severity};

/// Longest `publisher` (a token subject): bounded like every other input.
const MAX_PUBLISHER_BYTES: usize = 256;

/// An alert made ready to store, before the write lock.
#[derive(Debug)]
pub(super) struct Prepared {
    pub(super) sender: String,
    pub(super) identifier: String,
    pub(super) sent_unix: i64,
    pub(super) expires_unix: Option<i64>,
    /// `None` for an alert without info: inherited from its first reference.
    pub(super) kind: Option<AlertKind>,
    /// `None` for an alert without info: the gravest of its references.
    pub(super) severity: Option<Severity>,
    pub(super) msg_type: MsgType,
    pub(super) status: Status,
    pub(super) regions: Vec<RegionCode>,
    pub(super) references: Vec<Reference>,
    pub(super) publisher: String,
    pub(super) received_unix: i64,
    pub(super) xml: String,
    pub(super) json: String,
    pub(super) raw: String,
    pub(super) search_text: String,
}

impl Prepared {
    /// Normalizes `alert` and checks everything that needs no database.
    pub(super) fn new(
        alert: &Alert,
        raw: &str,
        publisher: &Publisher<'_>,
        now_unix: i64,
        config: &super::StoreConfig,
    ) -> Result<Prepared, StoreError> {
        let msg_type = MsgType::try_from(alert.msg_type)?;
        let limit = config.max_document_bytes;
        check_size("received body", raw.len(), limit)?;
        check_size("publisher", publisher.label.len(), MAX_PUBLISHER_BYTES)?;
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
            publisher: publisher.label.to_owned(),
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

/// The text the full-text index holds for `alert` (see the module docs of `store`): what
/// people look alerts up by, spot-check results especially: the product and who made and sold
/// it (names, addresses, brand, batch), each failed item (二氧化硫残留量), the notice number
/// (公告号), the testing institute, the category and the task source. Changing it means a
/// schema migration that queues every stored alert for `schema::reindex`.
pub(super) fn search_text(alert: &Alert) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let mut fields: Vec<Option<&str>> = vec![alert.note.as_deref()];
    for info in &alert.info {
        fields.extend([
            Some(info.event.as_str()),
            info.sender_name.as_deref(),
            info.headline.as_deref(),
            info.description.as_deref(),
            info.instruction.as_deref(),
        ]);
        fields.extend(info.areas.iter().map(|a| Some(a.area_desc.as_str())));
        if let Some(sc) = &info.spot_check {
            fields.extend([
                Some(sc.product_name.as_str()),
                sc.brand.as_deref(),
                sc.specification.as_deref(),
                sc.batch.as_deref(),
                sc.category.as_deref(),
                sc.producer_name.as_deref(),
                sc.producer_address.as_deref(),
                Some(sc.sampled_name.as_str()),
                sc.sampled_address.as_deref(),
                sc.notice_number.as_deref(),
                sc.task_source.as_deref(),
                sc.institute.as_deref(),
            ]);
            fields.extend(sc.failed_items.iter().map(|item| Some(item.name.as_str())));
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
#[derive(Debug)]
pub(super) struct Target {
    /// Its sequence number.
    pub(super) seq: u64,
    /// Its kind (a bare Cancel inherits the first target's).
    pub(super) kind: AlertKind,
    /// Its severity (a bare Cancel takes the gravest).
    pub(super) severity: Severity,
    /// Its own and inherited regions.
    pub(super) regions: Vec<RegionCode>,
    /// The audience an alert referencing it inherits: [`StoredAlert::reach`].
    pub(super) reach: Vec<Inherited>,
}

/// `p` as the record to store, numbered `seq`, with what its `targets` (the resolved
/// references) give it: a bare Cancel's kind and severity, and the inherited regions.
pub(super) fn build(
    p: Prepared,
    seq: u64,
    targets: &[Target],
) -> Result<(StoredAlert, String, String), StoreError> {
    let Some(kind) = p.kind.or_else(|| targets.first().map(|t| t.kind)) else {
        let reason = "an alert without info takes its kind from its references; none is known";
        return Err(CapError::missing("alert/references", reason).into());
    };
    let severity = (p.severity)
        .or_else(|| targets.iter().map(|t| t.severity).max())
        .unwrap_or(Severity::Unknown);
    let inherited: BTreeSet<RegionCode> = targets
        .iter()
        .flat_map(|t| t.regions.iter().copied())
        .filter(|r| !p.regions.contains(r))
        .collect();
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
        inherited_regions: inherited.into_iter().collect(),
        inherited_targets: Inherited::reduce(
            targets
                .iter()
                .flat_map(|t| t.reach.iter().copied())
                .collect(),
        ),
        references: targets.iter().map(|t| t.seq).collect(),
        publisher: p.publisher,
        received_unix: p.received_unix,
        xml: p.xml,
        json: p.json,
    };
    Ok((alert, p.raw, p.search_text))
}

/// Refuses `reference` if the alert it resolved to was issued (its publisher `label`,
/// `role@region subject`) for a region `publisher` may not publish to. A record without a
/// region in its label (an import) is not checked.
fn check_issuer(
    reference: &Reference,
    label: &str,
    publisher: &Publisher<'_>,
) -> Result<(), StoreError> {
    let (Some(may_reach), Some(issuer)) = (publisher.may_reach, label_region(label)) else {
        return Ok(());
    };
    if may_reach(issuer) {
        Ok(())
    } else {
        Err(StoreError::NotTheIssuer {
            reference: reference.to_string(),
            issuer,
        })
    }
}

/// The region of a publisher label `role@region subject` (as SQLite's schema 2 reads it).
pub(super) fn label_region(label: &str) -> Option<RegionCode> {
    let (_, rest) = label.split_once('@')?;
    let code = rest.get(..6)?;
    if rest.len() > 6 && !rest[6..].starts_with(' ') {
        return None;
    }
    code.parse().ok()
}

/// Refuses `reference` if the alert it resolved to reaches (`regions`, own and inherited) a
/// region `publisher` may not publish to ([`Publisher::may_reach`]).
fn check_reach(
    reference: &Reference,
    regions: &[RegionCode],
    publisher: &Publisher<'_>,
) -> Result<(), StoreError> {
    let Some(may_reach) = publisher.may_reach else {
        return Ok(());
    };
    match regions.iter().find(|&&r| !may_reach(r)) {
        Some(&region) => Err(StoreError::ReferenceOutOfReach {
            reference: reference.to_string(),
            region,
        }),
        None => Ok(()),
    }
}

/// Stores `p` (see the module docs for the steps).
pub(super) fn append(
    conn: &mut Connection,
    p: Prepared,
    publisher: &Publisher<'_>,
) -> Result<Appended, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let owner = senders::owner(&tx, &p.sender)?;
    senders::check(&p.sender, owner, publisher.region, publisher.rule)?;
    if let Some(existing) = by_identity(&tx, &p.sender, &p.identifier)? {
        return p.same_as(existing);
    }
    let targets = resolve(&tx, &p, publisher)?;
    let last: i64 = tx.query_row(super::schema::LAST_NUMBER, [], |r| r.get(0))?;
    let next = last.saturating_add(1);
    let (alert, raw, search_text) = build(p, next.unsigned_abs(), &targets)?;
    insert(&tx, &alert, &alert.references, &raw, &search_text)?;
    senders::bind(&tx, &alert.sender, publisher.region, publisher.rule, next)?;
    tx.commit()?;
    Ok(Appended {
        seq: alert.seq,
        id: alert.id.clone(),
        created: true,
        alert,
    })
}

impl Prepared {
    /// The answer to a re-post of `existing`'s (sender, identifier): the stored record if the
    /// normalized content is the same, [`StoreError::Conflict`] if not.
    pub(super) fn same_as(self, existing: StoredAlert) -> Result<Appended, StoreError> {
        existing_record(&self.sender, &self.identifier, &self.xml, existing)
    }

    /// Whether an unresolved reference fails the append (Update, Cancel) or is skipped.
    pub(super) fn must_resolve(&self) -> bool {
        matches!(self.msg_type, MsgType::Update | MsgType::Cancel)
    }
}

/// The answer to a re-post of (`sender`, `identifier`) with normalized content `xml` when
/// `existing` is stored under that identity.
pub(super) fn existing_record(
    sender: &str,
    identifier: &str,
    xml: &str,
    existing: StoredAlert,
) -> Result<Appended, StoreError> {
    if existing.xml != xml {
        return Err(StoreError::Conflict {
            sender: sender.to_owned(),
            identifier: identifier.to_owned(),
            seq: existing.seq,
        });
    }
    Ok(Appended {
        seq: existing.seq,
        id: existing.id.clone(),
        created: false,
        alert: existing,
    })
}

/// Writes a numbered record: the row, its reach as target rows (what the archive's region,
/// kind and severity filters match), a reference row for each of `references` (stored
/// alerts) and its full-text row. Inside the caller's transaction.
pub(super) fn insert(
    tx: &Connection,
    a: &StoredAlert,
    references: &[u64],
    raw: &str,
    search_text: &str,
) -> Result<(), StoreError> {
    let seq = to_sql_seq(a.seq);
    tx.execute(
        "INSERT INTO alerts (seq, sender, identifier, sent_unix, expires_unix, kind, severity,
             msg_type, status, regions, inherited_regions, refs, publisher, received_unix,
             xml, json, raw, inherited_targets)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
             ?18)",
        params![
            seq,
            a.sender,
            a.identifier,
            a.sent_unix,
            a.expires_unix,
            a.kind.as_str(),
            a.severity as u8,
            crate::convert::msg_type_str(a.msg_type),
            a.status.as_str(),
            join_list(&a.regions),
            join_list(&a.inherited_regions),
            join_list(&a.references),
            a.publisher,
            a.received_unix,
            a.xml,
            a.json,
            raw,
            (a.inherited_targets.iter().map(inherited_text))
                .collect::<Vec<_>>()
                .join(","),
        ],
    )?;
    let mut target = tx.prepare_cached(
        "INSERT OR IGNORE INTO alert_targets (seq, region, kind, rank) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for t in a.reach() {
        target.execute(params![
            seq,
            t.region.as_u32(),
            t.kind.as_str(),
            t.severity as u8
        ])?;
    }
    let mut reference =
        tx.prepare_cached("INSERT INTO alert_references (ref_seq, seq) VALUES (?1, ?2)")?;
    for r in references {
        reference.execute(params![to_sql_seq(*r), seq])?;
    }
    tx.execute(
        "INSERT INTO alerts_fts (rowid, body) VALUES (?1, ?2)",
        params![seq, search_text],
    )?;
    Ok(())
}

/// Copies records numbered elsewhere (the shared Redis log) into this file, the local archive
/// index of a Redis-backed hub, in one transaction (one fsync per batch, not per alert: a new
/// instance indexes a long log quickly). Records arrive in sequence order; one already here is
/// skipped.
pub(super) fn insert_numbered<'a>(
    conn: &mut Connection,
    records: impl IntoIterator<Item = (&'a StoredAlert, &'a str)>,
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (a, raw) in records {
        // One statement, compiled once for the batch, for the record and its references.
        // Held here already under its number, or (one statement, both unique keys) its CAP
        // identity under another: the log went back and lost it, and it was published again.
        // That copy stays (its number was given out); the new one is left out, as two rows
        // may not share an identity.
        let mut in_index = tx.prepare_cached(
            "SELECT seq FROM alerts WHERE seq = ?1 OR (sender = ?2 AND identifier = ?3) LIMIT 1",
        )?;
        let seq = to_sql_seq(a.seq);
        let found: Option<i64> = in_index
            .query_row(params![seq, a.sender, a.identifier], |r| r.get(0))
            .optional()?;
        match found {
            Some(here) if here == seq => continue,
            Some(earlier) => {
                tracing::error!(
                    seq = a.seq,
                    earlier,
                    sender = %a.sender,
                    identifier = %a.identifier,
                    "alert left out of the archive index: it holds the same identity under an \
                     earlier number (the shared log went back and the alert was published again)"
                );
                continue;
            }
            None => {}
        }
        // A record whose CAP document cannot be read is left out (logged), like an
        // undecodable log entry: it must not keep every later alert out of the archive.
        let model = match a.alert() {
            Ok(model) => model,
            Err(err) => {
                tracing::error!(seq = a.seq, %err, "unreadable alert left out of the archive index");
                continue;
            }
        };
        // A reference to an alert this index does not hold (a log entry trimmed or deleted
        // before the index was built) is not indexed: its foreign key would refuse the
        // record, and with it every later one.
        let mut held_here = tx.prepare_cached("SELECT 1 FROM alerts WHERE seq = ?1")?;
        let mut held = Vec::with_capacity(a.references.len());
        for &r in &a.references {
            if held_here.exists(params![to_sql_seq(r)])? {
                held.push(r);
            } else {
                tracing::warn!(
                    seq = a.seq,
                    reference = r,
                    "reference to an alert missing from the archive index not indexed"
                );
            }
        }
        insert(&tx, a, &held, raw, &search_text(&model))?;
    }
    tx.commit()?;
    Ok(())
}

/// The stored alerts `p.references` name, each once, in document order, in the SQLite store.
fn resolve(
    conn: &Connection,
    p: &Prepared,
    publisher: &Publisher<'_>,
) -> Result<Vec<Target>, StoreError> {
    resolve_with(p, publisher, |r| {
        by_identity(conn, &r.sender, &r.identifier)
    })
}

/// The stored alerts an Update's or Cancel's `p.references` name, each once, in document
/// order, as `lookup` finds them by CAP identity (both backends): `sent` must match too; an
/// unresolved one fails; each must have been issued for, and reach only, regions in
/// `publisher`'s reach. Other message types act on nothing they reference: none.
pub(super) fn resolve_with(
    p: &Prepared,
    publisher: &Publisher<'_>,
    mut lookup: impl FnMut(&Reference) -> Result<Option<StoredAlert>, StoreError>,
) -> Result<Vec<Target>, StoreError> {
    let mut targets: Vec<Target> = Vec::new();
    if !p.must_resolve() {
        return Ok(targets);
    }
    for r in &p.references {
        let Some(a) = lookup(r)?.filter(|a| a.sent_unix == r.sent.unix_seconds()) else {
            return Err(StoreError::UnknownReference {
                reference: r.to_string(),
            });
        };
        if targets.iter().any(|t| t.seq == a.seq) {
            continue;
        }
        let reach = a.reach();
        let mut regions = a.regions;
        regions.extend(a.inherited_regions);
        check_reach(r, &regions, publisher)?;
        check_issuer(r, &a.publisher, publisher)?;
        targets.push(Target {
            seq: a.seq,
            kind: a.kind,
            severity: a.severity,
            regions,
            reach,
        });
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuing_region_is_read_off_the_publisher_label() {
        let code = |s: &str| RegionCode::parse(s).ok();
        assert_eq!(label_region("city-admin@330100 alice"), code("330100"));
        assert_eq!(label_region("county-operator@330106"), code("330106"));
        for unlabelled in [
            "",
            "import",
            "x@33010",
            "x@3301000 y",
            "x@abcdef",
            "x@000000 y",
        ] {
            assert_eq!(label_region(unlabelled), None, "{unlabelled:?}");
        }
    }
}
