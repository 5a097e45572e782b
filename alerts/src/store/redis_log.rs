//! The shared alert log's wire format in Redis: key names, the append script, and the
//! conversion of stream entries to and from [`StoredAlert`].
//!
//! # Keys (prefix `P`, default `hubcast`)
//! ```text
//! {P}:alerts:log   STREAM   one entry per alert, id "<seq>-0"; fields `rec` (the record as
//!                           JSON, without seq) and `raw` (the body as received, audit)
//! {P}:alerts:ids   HASH     "<sender>\n<identifier>" → seq: CAP identity, idempotency,
//!                           reference lookup
//! {P}:alerts:senders HASH   CAP sender → the GB2260 code of the region that owns it
//!                           (`senders.rs`); written by the append script, and once per
//!                           log for the senders already in it (`…:senders:from_log` set)
//! ```
//! The braces are a Redis Cluster hash tag: both keys live in one slot, so the script may
//! touch both. Entries are never trimmed or deleted: the log is the archive's source of truth
//! (a few thousand alerts a day is megabytes a year).
//!
//! # The append script
//! Atomic in Redis (a script runs alone): if another region owns the sender (and the rule is
//! not `configured`) it returns `{2, owner}`; if the identity is known, `{0, seq}` (the
//! caller compares content); else it numbers the alert one above the stream's last entry
//! (and above the numbering floor the calling instance passes: the highest number it has
//! seen, so a log that went back never gives a number out twice), `XADD`s it with that explicit id, records the identity and binds the sender to the
//! publisher's region: `{1, seq}`. Numbering from the
//! stream itself, not a separate counter, keeps the sequence gap-free even if a script
//! failed half way (Redis does not roll scripts back): nothing but a successful `XADD`
//! consumes a number.

use redis::Value;
use serde::{Deserialize, Serialize};
use tiers::RegionCode;

use super::sqlite::severity_from_rank;
use super::types::public_id;
use super::{StoreError, StoredAlert};
use crate::cap::Status;
use crate::convert::{msg_type_str, parse_msg_type};
use crate::hub::Inherited;

/// The append script (see the module docs). KEYS: log, ids, senders. ARGV: identity, record,
/// raw, sender, publisher region, sender rule (`first` or `configured`), numbering floor (the
/// highest number the calling instance has seen: the new alert is numbered above it too).
pub(super) const APPEND_SCRIPT: &str = r"
local owner = redis.call('HGET', KEYS[3], ARGV[4])
if owner and owner ~= ARGV[5] and ARGV[6] ~= 'configured' then
  return {2, tonumber(owner)}
end
local known = redis.call('HGET', KEYS[2], ARGV[1])
if known then return {0, tonumber(known)} end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local seq = 1
if #last > 0 then
  seq = tonumber(string.match(last[1][1], '^(%d+)-')) + 1
end
local floor = tonumber(ARGV[7]) or 0
if seq <= floor then seq = floor + 1 end
if seq > 9007199254740991 then
  return redis.error_reply('hubcast: the alert log is numbered up to 2^53-1; its last entry is ' .. last[1][1])
end
local n = string.format('%d', seq)
redis.call('XADD', KEYS[1], n .. '-0', 'rec', ARGV[2], 'raw', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], n)
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
return {1, seq}
";

/// The Redis keys of one hub's log.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    pub(super) log: String,
    pub(super) ids: String,
    pub(super) senders: String,
    pub(super) senders_from_log: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Keys {
        Keys {
            log: format!("{{{prefix}}}:alerts:log"),
            ids: format!("{{{prefix}}}:alerts:ids"),
            senders: format!("{{{prefix}}}:alerts:senders"),
            senders_from_log: format!("{{{prefix}}}:alerts:senders:from_log"),
        }
    }
}

/// The field of `{P}:alerts:ids` for a CAP identity. CAP forbids whitespace in both parts,
/// so the newline cannot be ambiguous.
pub(super) fn identity(sender: &str, identifier: &str) -> String {
    format!("{sender}\n{identifier}")
}

/// The stream entry id of sequence number `seq`.
pub(super) fn entry_id(seq: u64) -> String {
    format!("{seq}-0")
}

/// The largest sequence number a log entry may carry: the append script numbers in Lua,
/// whose numbers are doubles, exact up to 2^53 − 1 (it refuses to go further, and writes
/// numbers with `%d`, not Lua's default `%.14g`, which turns 10^14 into `1e+14`). An entry
/// beyond (written by hand or by something else) is malformed.
pub(super) const MAX_SEQ: u64 = (1 << 53) - 1;

/// A [`StoredAlert`] without its number, as the `rec` field holds it.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    sender: String,
    identifier: String,
    sent: i64,
    expires: Option<i64>,
    kind: String,
    severity: u8,
    msg_type: String,
    status: String,
    regions: Vec<u32>,
    inherited: Vec<u32>,
    refs: Vec<u64>,
    publisher: String,
    received: i64,
    xml: String,
    json: String,
    /// [`StoredAlert::inherited_targets`] as `(region, kind, severity rank)`: absent
    /// (`None`) in records written before it existed, present (maybe empty) in newer ones.
    #[serde(default)]
    targets: Option<Vec<(u32, String, u8)>>,
}

/// The `rec` field for `a`.
pub(super) fn encode(a: &StoredAlert) -> String {
    let record = Record {
        sender: a.sender.clone(),
        identifier: a.identifier.clone(),
        sent: a.sent_unix,
        expires: a.expires_unix,
        kind: a.kind.as_str().to_owned(),
        severity: a.severity as u8,
        msg_type: msg_type_str(a.msg_type).to_owned(),
        status: a.status.as_str().to_owned(),
        regions: a.regions.iter().map(|r| r.as_u32()).collect(),
        inherited: a.inherited_regions.iter().map(|r| r.as_u32()).collect(),
        refs: a.references.clone(),
        publisher: a.publisher.clone(),
        received: a.received_unix,
        xml: a.xml.clone(),
        json: a.json.clone(),
        targets: Some(
            (a.inherited_targets.iter())
                .map(|t| {
                    (
                        t.region.as_u32(),
                        t.kind.as_str().to_owned(),
                        t.severity as u8,
                    )
                })
                .collect(),
        ),
    };
    // Strings, numbers and lists only: serializing cannot fail.
    serde_json::to_string(&record).unwrap_or_default()
}

/// One stream entry: the alert and the body as received.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) alert: StoredAlert,
    pub(super) raw: String,
    /// The record predates inherited targets (no `targets` field) and references alerts:
    /// its `inherited_targets` are empty until the store fills them in from what it
    /// references (`redis_read::complete_targets`).
    pub(super) targets_missing: bool,
}

/// One place in the log: its number, and its alert unless the record cannot be decoded (an
/// entry written by something else or a later version). Readers skip such an entry and move
/// past its number instead of stopping there: one bad entry must not hold back every alert
/// after it (`StoreError::Corrupt` names it; `get` of that number reports it).
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) seq: u64,
    pub(super) entry: Result<Entry, StoreError>,
}

impl Slot {
    /// The entry, or `None` with the reason logged.
    pub(super) fn readable(self) -> Option<Entry> {
        match self.entry {
            Ok(entry) => Some(entry),
            Err(err) => {
                tracing::error!(seq = self.seq, %err,
                    "unreadable entry in the shared alert log skipped");
                None
            }
        }
    }
}

/// The entries of an `XRANGE`/`XREVRANGE` reply.
pub(super) fn entries(reply: Value) -> Result<Vec<Slot>, StoreError> {
    let Value::Array(items) = reply else {
        return match reply {
            Value::Nil => Ok(Vec::new()),
            other => Err(malformed(0, format!("expected entries, got {other:?}"))),
        };
    };
    items.into_iter().map(entry).collect()
}

/// The entries of an `XREAD` reply on one stream (`Nil`: the block timed out).
pub(super) fn read_reply(reply: Value) -> Result<Vec<Slot>, StoreError> {
    let streams = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams,
        // RESP3 answers a map of stream name → entries.
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(k, v)| Value::Array(vec![k, v]))
            .collect(),
        other => return Err(malformed(0, format!("expected streams, got {other:?}"))),
    };
    let mut out = Vec::new();
    for stream in streams {
        let Value::Array(mut pair) = stream else {
            return Err(malformed(0, "stream reply is not a pair".to_owned()));
        };
        if pair.len() != 2 {
            return Err(malformed(0, "stream reply is not a pair".to_owned()));
        }
        if let Some(list) = pair.pop() {
            out.extend(entries(list)?);
        }
    }
    Ok(out)
}

/// An entry's number (its id must be `<seq>-0`: anything else is not our log) and contents.
fn entry(item: Value) -> Result<Slot, StoreError> {
    let Value::Array(mut parts) = item else {
        return Err(malformed(0, "entry is not an array".to_owned()));
    };
    if parts.len() != 2 {
        return Err(malformed(0, "entry is not [id, fields]".to_owned()));
    }
    let fields = parts.pop().unwrap_or(Value::Nil);
    let id = text(parts.pop().unwrap_or(Value::Nil)).unwrap_or_default();
    let seq = id
        .strip_suffix("-0")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| (1..=MAX_SEQ).contains(&s))
        .ok_or_else(|| malformed(0, format!("entry id {id:?} is not <seq>-0 (1..=2^53-1)")))?;
    Ok(Slot {
        seq,
        entry: contents(seq, fields),
    })
}

fn contents(seq: u64, fields: Value) -> Result<Entry, StoreError> {
    let pairs: Vec<Value> = match fields {
        Value::Array(values) => values,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return Err(malformed(seq, "fields are not a list".to_owned())),
    };
    let (mut rec, mut raw) = (None, None);
    let mut it = pairs.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        match text(name).as_deref() {
            Some("rec") => rec = text(value),
            Some("raw") => raw = text(value),
            _ => {}
        }
    }
    let rec = rec.ok_or_else(|| malformed(seq, "no `rec` field".to_owned()))?;
    let (alert, targets_missing) = decode(seq, &rec)?;
    Ok(Entry {
        alert,
        raw: raw.unwrap_or_default(),
        targets_missing,
    })
}

/// The record as a [`StoredAlert`], and whether its inherited targets are missing (written
/// before they were stored, and it references alerts).
fn decode(seq: u64, rec: &str) -> Result<(StoredAlert, bool), StoreError> {
    let bad = |reason: String| malformed(seq, reason);
    let r: Record = serde_json::from_str(rec).map_err(|e| bad(e.to_string()))?;
    let codes = |list: &[u32]| -> Result<Vec<RegionCode>, StoreError> {
        list.iter()
            .map(|&c| RegionCode::from_u32(c).map_err(|e| bad(format!("region {c}: {e}"))))
            .collect()
    };
    let targets_missing = r.targets.is_none() && !r.refs.is_empty();
    let alert = StoredAlert {
        seq,
        id: public_id(seq),
        kind: r.kind.parse().map_err(|e| bad(format!("{e}")))?,
        severity: severity_from_rank(i64::from(r.severity))
            .ok_or_else(|| bad(format!("severity {}", r.severity)))?,
        msg_type: parse_msg_type(&r.msg_type)
            .ok_or_else(|| bad(format!("msg_type {}", r.msg_type)))?,
        status: r
            .status
            .parse::<Status>()
            .map_err(|e| bad(format!("{e}")))?,
        regions: codes(&r.regions)?,
        inherited_regions: codes(&r.inherited)?,
        inherited_targets: targets(&r, &bad)?,
        references: r.refs,
        sender: r.sender,
        identifier: r.identifier,
        sent_unix: r.sent,
        expires_unix: r.expires,
        publisher: r.publisher,
        received_unix: r.received,
        xml: r.xml,
        json: r.json,
    };
    Ok((alert, targets_missing))
}

/// The record's inherited targets: none for a record written before they were stored (the
/// store fills those in from what they reference: `redis_read::complete_targets`).
fn targets(r: &Record, bad: &dyn Fn(String) -> StoreError) -> Result<Vec<Inherited>, StoreError> {
    (r.targets.iter().flatten())
        .map(|(code, kind, rank)| {
            Ok(Inherited {
                region: RegionCode::from_u32(*code)
                    .map_err(|e| bad(format!("target region {code}: {e}")))?,
                kind: kind.parse().map_err(|e| bad(format!("target {e}")))?,
                severity: severity_from_rank(i64::from(*rank))
                    .ok_or_else(|| bad(format!("target severity {rank}")))?,
            })
        })
        .collect()
}

fn text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

fn malformed(seq: u64, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        seq,
        reason: format!("shared log entry: {reason}"),
    }
}

/// What [`APPEND_SCRIPT`] answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScriptAnswer {
    /// `{1, seq}`: appended as `seq`.
    Created(u64),
    /// `{0, seq}`: the identity is already stored as `seq`.
    Known(u64),
    /// `{2, region}`: the sender belongs to `region`.
    SenderTaken(RegionCode),
}

/// Reads [`APPEND_SCRIPT`]'s answer.
pub(super) fn script_answer(reply: &Value) -> Result<ScriptAnswer, StoreError> {
    if let Value::Array(parts) = reply
        && let [Value::Int(code), Value::Int(n)] = parts.as_slice()
    {
        let seq = u64::try_from(*n).ok();
        let region = u32::try_from(*n)
            .ok()
            .and_then(|n| RegionCode::from_u32(n).ok());
        match (code, seq, region) {
            (1, Some(seq), _) => return Ok(ScriptAnswer::Created(seq)),
            (0, Some(seq), _) => return Ok(ScriptAnswer::Known(seq)),
            (2, _, Some(region)) => return Ok(ScriptAnswer::SenderTaken(region)),
            _ => {}
        }
    }
    Err(malformed(0, format!("append script answered {reply:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_append_script_refuses_past_max_seq() {
        // The Lua literal and MAX_SEQ are one limit: they must not drift apart.
        assert!(APPEND_SCRIPT.contains(&format!("if seq > {MAX_SEQ} then")));
    }
    use crate::hub::{AlertKind, MsgType, Severity};

    fn sample() -> StoredAlert {
        StoredAlert {
            seq: 7,
            id: "7".to_owned(),
            sender: "zj@amr".to_owned(),
            identifier: "x-1".to_owned(),
            sent_unix: 1_750_000_000,
            expires_unix: Some(1_750_086_400),
            kind: AlertKind::SpotCheck,
            severity: Severity::Severe,
            msg_type: MsgType::Update,
            status: Status::Actual,
            regions: vec![RegionCode::from_u32(330_106).expect("code")],
            inherited_regions: vec![RegionCode::from_u32(330_100).expect("code")],
            inherited_targets: vec![Inherited {
                region: RegionCode::from_u32(330_100).expect("code"),
                kind: AlertKind::Food,
                severity: Severity::Extreme,
            }],
            references: vec![3],
            publisher: "user:1".to_owned(),
            received_unix: 1_750_000_001,
            xml: "<alert/>".to_owned(),
            json: "{}".to_owned(),
        }
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn entries_round_trip_through_the_record() {
        let a = sample();
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("7-0"),
            Value::Array(vec![
                bulk("rec"),
                bulk(&encode(&a)),
                bulk("raw"),
                bulk("<r/>"),
            ]),
        ])]);
        let mut got = entries(reply).expect("entries");
        assert_eq!(got.len(), 1);
        let slot = got.pop().expect("one");
        assert_eq!(slot.seq, 7);
        let entry = slot.entry.expect("readable");
        assert_eq!(entry.alert, a);
        assert_eq!(entry.raw, "<r/>");
    }

    #[test]
    fn records_written_before_inherited_targets_still_read() {
        let a = sample();
        let mut rec: serde_json::Value = serde_json::from_str(&encode(&a)).expect("json");
        assert!(rec["targets"].is_array(), "{rec}");
        let (new, missing) = decode(7, &rec.to_string()).expect("a record");
        assert!(!missing);
        assert_eq!(new, a);
        rec.as_object_mut().expect("object").remove("targets");
        let (old, missing) = decode(7, &rec.to_string()).expect("an older record");
        assert!(missing, "references, no targets: the store fills them in");
        assert!(old.inherited_targets.is_empty());
        assert_eq!(old.inherited_regions, a.inherited_regions);
        rec["refs"] = serde_json::json!([]);
        let (_, missing) = decode(7, &rec.to_string()).expect("no references");
        assert!(!missing, "nothing to inherit");
        rec["targets"] = serde_json::json!([[330_100, "nonsense", 3]]);
        assert!(
            decode(7, &rec.to_string()).is_err(),
            "a bad target is corrupt"
        );
    }

    #[test]
    fn malformed_entries_are_corrupt_not_panics() {
        // Not our log's shape or numbering: the whole reply is refused.
        for reply in [
            Value::Int(3),
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![Value::Array(vec![bulk("x-0"), Value::Array(vec![])])]),
            Value::Array(vec![Value::Array(vec![bulk("0-0"), Value::Array(vec![])])]),
            Value::Array(vec![Value::Array(vec![
                bulk(&entry_id(MAX_SEQ + 1)),
                Value::Array(vec![]),
            ])]),
            Value::Array(vec![Value::Array(vec![
                bulk(&entry_id(u64::MAX)),
                Value::Array(vec![]),
            ])]),
        ] {
            assert!(
                matches!(entries(reply), Err(StoreError::Corrupt { .. })),
                "must be Corrupt"
            );
        }
        // A numbered entry whose record cannot be read: that entry is Corrupt, the ones
        // around it are read, and its number is known (readers move past it).
        let good = |seq: u64| {
            let mut a = sample();
            a.seq = seq;
            a.id = public_id(seq);
            Value::Array(vec![
                bulk(&format!("{seq}-0")),
                Value::Array(vec![bulk("rec"), bulk(&encode(&a))]),
            ])
        };
        let reply = Value::Array(vec![
            good(4),
            Value::Array(vec![bulk("5-0"), Value::Array(vec![])]),
            Value::Array(vec![
                bulk("6-0"),
                Value::Array(vec![bulk("rec"), bulk("{not json")]),
            ]),
            good(7),
        ]);
        let slots = entries(reply).expect("slots");
        let seqs: Vec<u64> = slots.iter().map(|s| s.seq).collect();
        assert_eq!(seqs, [4, 5, 6, 7]);
        let readable: Vec<u64> = slots
            .into_iter()
            .filter_map(Slot::readable)
            .map(|e| e.alert.seq)
            .collect();
        assert_eq!(readable, [4, 7]);
        assert!(script_answer(&Value::Nil).is_err());
        let answer = |code, n| script_answer(&Value::Array(vec![Value::Int(code), Value::Int(n)]));
        assert_eq!(answer(1, 9).expect("created"), ScriptAnswer::Created(9));
        assert_eq!(answer(0, 3).expect("known"), ScriptAnswer::Known(3));
        let owner = RegionCode::from_u32(330_000).expect("code");
        assert_eq!(
            answer(2, 330_000).expect("taken"),
            ScriptAnswer::SenderTaken(owner)
        );
        assert!(answer(2, 12).is_err(), "not a region code");
        assert!(answer(1, -1).is_err(), "not a sequence number");
        assert!(answer(7, 1).is_err(), "unknown code");
    }

    #[test]
    fn keys_share_one_cluster_slot() {
        let k = Keys::new("hubcast");
        assert_eq!(k.log, "{hubcast}:alerts:log");
        assert_eq!(k.ids, "{hubcast}:alerts:ids");
        assert_eq!(k.senders, "{hubcast}:alerts:senders");
    }
}
