//! Shared by the `store_*` tests: alerts built in code (any kind, severity, regions, time and
//! text), the sample CAP files, and a store in a temporary directory.
#![allow(dead_code)] // each test file uses its own subset

use alerts::cap::{
    Alert, AlertKind, Area, CapDateTime, Category, Certainty, GB2260, Info, KIND_CODE, MsgType,
    Reference, Scope, Severity, Status, Urgency, ValuePair,
};
use alerts::store::{Appended, Publisher, SenderRule, SqliteStore, Store};
use tiers::{RegionCode, RegionTree};

pub const FOOD: &[u8] = include_bytes!("../data/food_warning_330100.xml");
pub const SPOT: &[u8] = include_bytes!("../data/spotcheck_330106.xml");
pub const SPOT_JSON: &[u8] = include_bytes!("../data/spotcheck_330106.json");
pub const UPDATE: &[u8] = include_bytes!("../data/food_warning_update.xml");
pub const CANCEL: &[u8] = include_bytes!("../data/spotcheck_cancel.xml");

pub const SENDER: &str = "scjg.test.zj.gov.cn";
/// 2024-05-17T00:00:00Z: the base of generated `sent` times.
pub const T0: i64 = 1_715_904_000;

pub fn parse(xml: &[u8]) -> Alert {
    Alert::from_xml(xml).expect("sample parses")
}

pub fn code(s: &str) -> RegionCode {
    RegionCode::parse(s).expect("region code")
}

/// A publisher labelled `label`, acting for Hangzhou (330100), sender bound on first use.
pub fn by(label: &str) -> Publisher<'_> {
    Publisher {
        label,
        region: code("330100"),
        rule: SenderRule::FirstUse,
        may_reach: None,
    }
}

/// A store file in `dir`.
pub fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("alerts.db")).expect("store opens")
}

/// Appends `alert` as if posted as its XML by a test publisher at `T0 + 1 day`.
pub fn append(store: &dyn Store, alert: &Alert) -> Appended {
    store
        .append(alert, &alert.to_xml(), &by("test-publisher"), T0 + 86_400)
        .expect("append")
}

/// What a generated alert looks like.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    pub identifier: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub regions: &'a [&'a str],
    pub sent_unix: i64,
    pub headline: &'a str,
    pub description: &'a str,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            identifier: "GEN-1".into(),
            kind: AlertKind::FoodSafety,
            severity: Severity::Moderate,
            regions: &["330100"],
            sent_unix: T0,
            headline: "食品安全提示",
            description: "请消费者注意饮食安全。",
        }
    }
}

/// An `Alert` (msgType Alert) from `spec`: one zh-CN info, one area per region, named from
/// the Zhejiang tree, expiring 30 days after `sent`.
pub fn alert(spec: &Spec<'_>) -> Alert {
    let sent = CapDateTime::from_unix(spec.sent_unix, 480).expect("sent");
    let mut alert = Alert::new(
        spec.identifier.clone(),
        SENDER,
        sent,
        Status::Actual,
        MsgType::Alert,
        Scope::Public,
    );
    let mut info = Info::new(
        Category::Health,
        spec.kind.name_zh(),
        Urgency::Expected,
        spec.severity,
        Certainty::Likely,
    );
    info.language = Some("zh-CN".into());
    info.event_codes
        .push(ValuePair::new(KIND_CODE, spec.kind.as_str()));
    info.expires = CapDateTime::from_unix(spec.sent_unix + 30 * 86_400, 480);
    info.headline = Some(spec.headline.into());
    info.description = Some(spec.description.into());
    let tree = RegionTree::zhejiang();
    for r in spec.regions {
        let name = tree.get(code(r)).map_or("未知地区", |r| r.name_zh.as_str());
        let mut area = Area::new(name);
        area.geocodes.push(ValuePair::new(GB2260, *r));
        info.areas.push(area);
    }
    alert.info.push(info);
    alert
}

/// A follow-up of `original`: an Update (with `original`'s info, severity raised) or a bare
/// Cancel (no info), referencing it.
pub fn follow_up(original: &Alert, identifier: &str, msg_type: MsgType) -> Alert {
    let sent = CapDateTime::from_unix(original.sent.unix_seconds() + 3_600, 480).expect("sent");
    let mut alert = Alert::new(
        identifier,
        original.sender.clone(),
        sent,
        Status::Actual,
        msg_type,
        Scope::Public,
    );
    alert.references = Some(Reference::to(original).to_string());
    if msg_type == MsgType::Update {
        let mut info = original.info[0].clone();
        info.severity = Severity::Extreme;
        alert.info.push(info);
    }
    alert
}

/// SQL taking a file this build wrote back to schema version 4, before `alert_targets` (and
/// before version 6's `numbering`):
/// `alert_regions` rebuilt from the `regions` and `inherited_regions` columns as version 4
/// wrote it, `alert_targets` dropped. The caller sets `user_version` (and undoes more for an
/// older version).
pub const BACK_TO_VERSION_4: &str = "
    DROP TABLE numbering;
    CREATE TABLE alert_regions (
        region INTEGER NOT NULL,
        seq    INTEGER NOT NULL REFERENCES alerts (seq),
        own    INTEGER NOT NULL,
        PRIMARY KEY (region, seq)
    ) STRICT, WITHOUT ROWID;
    WITH RECURSIVE split (seq, own, item, rest) AS (
        SELECT seq, 1, '', regions || ',' FROM alerts WHERE regions != ''
        UNION ALL
        SELECT seq, 0, '', inherited_regions || ',' FROM alerts WHERE inherited_regions != ''
        UNION ALL
        SELECT seq, own, substr(rest, 1, instr(rest, ',') - 1),
            substr(rest, instr(rest, ',') + 1)
        FROM split WHERE rest != ''
    )
    INSERT INTO alert_regions (region, seq, own)
        SELECT CAST(item AS INTEGER), seq, own FROM split WHERE item != '';
    DROP TABLE alert_targets;
";

/// Sequence numbers of a list of stored alerts.
pub fn seqs(items: &[alerts::store::StoredAlert]) -> Vec<u64> {
    items.iter().map(|a| a.seq).collect()
}
