//! Values in and out of the [`Hub`](super::Hub): alert kinds and severities, the published alert
//! (metadata plus its one serialized frame), subscriber filters, deliveries, events and errors.
//!
//! The CAP model maps onto these types; the hub never looks inside a frame.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use tiers::RegionCode;

/// What an alert is about: the four publishing systems of the administration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum AlertKind {
    /// Food-safety warning (食品安全预警).
    Food = 0,
    /// Commodity-quality spot-check result (抽检结果), one record per batch tested.
    SpotCheck = 1,
    /// Consumer warning or advice (消费警示/消费提示).
    Consumer = 2,
    /// Market-testing result (市场检测结果).
    Market = 3,
}

impl AlertKind {
    /// Every kind, in wire order.
    pub const ALL: [AlertKind; 4] = [Self::Food, Self::SpotCheck, Self::Consumer, Self::Market];

    /// The wire name used in query strings (`kind=food,spotcheck`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Food => "food",
            Self::SpotCheck => "spotcheck",
            Self::Consumer => "consumer",
            Self::Market => "market",
        }
    }

    /// Dense index 0..4 (the discriminant), for per-kind arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlertKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownName::new("alert kind", s))
    }
}

/// A set of [`AlertKind`]s as a bitset (bit `k` = kind with index `k`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KindSet(u8);

impl KindSet {
    /// No kind: a filter with it is rejected by [`Hub::subscribe`](super::Hub::subscribe).
    pub const EMPTY: KindSet = KindSet(0);
    /// All four kinds (the default of a subscription without `kind=`).
    pub const ALL: KindSet = KindSet(0b1111);

    /// The set holding only `kind`.
    pub fn only(kind: AlertKind) -> KindSet {
        KindSet(1 << kind.index())
    }

    /// This set plus `kind`.
    #[must_use]
    pub fn with(self, kind: AlertKind) -> KindSet {
        KindSet(self.0 | 1 << kind.index())
    }

    /// True if `kind` is in the set.
    pub fn contains(self, kind: AlertKind) -> bool {
        self.0 & (1 << kind.index()) != 0
    }

    /// True if no kind is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The raw bits (bit `k` = kind with index `k`).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The kinds in the set, in index order.
    pub fn iter(self) -> impl Iterator<Item = AlertKind> {
        AlertKind::ALL
            .into_iter()
            .filter(move |&k| self.contains(k))
    }
}

impl FromIterator<AlertKind> for KindSet {
    fn from_iter<I: IntoIterator<Item = AlertKind>>(iter: I) -> Self {
        iter.into_iter().fold(KindSet::EMPTY, KindSet::with)
    }
}

impl fmt::Debug for KindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// CAP severity, ordered `Unknown < Minor < Moderate < Severe < Extreme`. China's warning
/// levels map as I (red) → Extreme, II (orange) → Severe, III (yellow) → Moderate,
/// IV (blue) → Minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum Severity {
    /// Severity unknown (CAP `Unknown`); passes only a `min_severity` of `Unknown`.
    #[default]
    Unknown = 0,
    /// Minimal to no known threat (Level IV, blue).
    Minor = 1,
    /// Possible threat (Level III, yellow).
    Moderate = 2,
    /// Significant threat (Level II, orange).
    Severe = 3,
    /// Extraordinary threat (Level I, red).
    Extreme = 4,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] = [
        Self::Unknown,
        Self::Minor,
        Self::Moderate,
        Self::Severe,
        Self::Extreme,
    ];

    /// The wire name used in query strings (`min_severity=moderate`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Minor => "minor",
            Self::Moderate => "moderate",
            Self::Severe => "severe",
            Self::Extreme => "extreme",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownName::new("severity", s))
    }
}

/// The CAP `msgType`s the hub fans out (Ack and Error are not public messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgType {
    /// A new alert.
    Alert,
    /// Supersedes the alerts in `references`; itself live.
    Update,
    /// Withdraws the alerts in `references`; not live itself.
    Cancel,
}

/// An alert the store has durably written and numbered, ready to fan out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedAlert {
    /// Hub-wide sequence number from the store; strictly increasing across publishes.
    pub seq: u64,
    /// The alert's public id (used in `/alerts/{id}.xml`).
    pub id: String,
    /// What it is about.
    pub kind: AlertKind,
    /// How bad.
    pub severity: Severity,
    /// Its areas. Codes outside the hub's tree reach no subscriber.
    pub regions: Vec<RegionCode>,
    /// Alert, Update or Cancel.
    pub msg_type: MsgType,
    /// Sequence numbers of the alerts an Update or Cancel supersedes (resolved by the store).
    pub references: Vec<u64>,
    /// The audience it inherits from what it references, resolved by the store when it was
    /// published: each referenced alert's areas with its kind and severity, and what that one
    /// inherited in turn. When it is empty, the hub takes the targets of the references it
    /// still holds instead, so a caller without it (tests, old records) still reaches
    /// retained originals' audience.
    pub inherited: Vec<Inherited>,
    /// When it stops being live, unix seconds; `None`: until updated or cancelled.
    pub expires: Option<u64>,
    /// The message serialized once by the caller (e.g. the JSON text frame); shared, not copied.
    pub frame: Bytes,
}

/// One region an Update or Cancel reaches because an alert it references did, with that
/// alert's kind and severity: subscribers who received the original receive its update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Inherited {
    /// The original's area.
    pub region: RegionCode,
    /// The original's kind.
    pub kind: AlertKind,
    /// The original's severity.
    pub severity: Severity,
}

impl Inherited {
    /// `targets` reduced to one entry per (region, kind), the gravest severity kept: that
    /// reaches the same subscribers (a filter takes everything from its lowest severity up)
    /// and bounds the list by the region tree, however long a chain of updates grows.
    pub fn reduce(mut targets: Vec<Inherited>) -> Vec<Inherited> {
        targets.sort_unstable_by_key(|t| (t.region, t.kind, std::cmp::Reverse(t.severity)));
        targets.dedup_by(|later, first| later.region == first.region && later.kind == first.kind);
        targets
    }
}

/// What a subscriber asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Filter {
    /// Region subtree, matched both ways: alerts for this region, its ancestors and its
    /// descendants.
    pub region: RegionCode,
    /// Kinds wanted; must not be empty.
    pub kinds: KindSet,
    /// Lowest severity wanted.
    pub min_severity: Severity,
}

impl Filter {
    /// Every kind and severity about `region`.
    pub fn all(region: RegionCode) -> Filter {
        Filter {
            region,
            kinds: KindSet::ALL,
            min_severity: Severity::Unknown,
        }
    }

    /// True if an alert of this kind and severity passes (the region is checked separately).
    pub fn accepts(&self, kind: AlertKind, severity: Severity) -> bool {
        self.kinds.contains(kind) && severity >= self.min_severity
    }
}

/// One item a subscriber's connection writes, in order, from [`Hub::pop`](super::Hub::pop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// An alert: send `frame` with id `seq` (SSE `id:`, WebSocket envelope).
    Alert {
        /// The alert's sequence number; the client's resume point.
        seq: u64,
        /// The shared serialized message.
        frame: Bytes,
    },
    /// Alerts after the subscriber's `since` are gone from retention: tell the client to read
    /// the archive for anything before `oldest_available`. Always the first delivery if any.
    Reset {
        /// The oldest sequence number the hub still replays.
        oldest_available: u64,
    },
}

/// A subscription handle. Stale handles (after unsubscribe or disconnect) are answered with
/// `None` or `false`, never confused with a later subscriber in the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubId {
    pub(super) index: u32,
    pub(super) generation: u32,
}

impl SubId {
    /// A unique number for driver-side maps.
    pub fn as_u64(self) -> u64 {
        u64::from(self.generation) << 32 | u64::from(self.index)
    }

    /// The subscriber's slot in the hub (reused after an unsubscribe, with a new
    /// generation): a dense index for driver-side tables.
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// Why the hub dropped a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// Its queue was full, or its replay fell out of retention; it may resubscribe with `since`.
    SlowConsumer,
}

impl DisconnectReason {
    /// The WebSocket close code the driver sends.
    pub fn close_code(self) -> u16 {
        match self {
            Self::SlowConsumer => 4008,
        }
    }

    /// The WebSocket close reason the driver sends.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SlowConsumer => "slow consumer",
        }
    }
}

/// What the driver must act on, from [`Hub::poll_event`](super::Hub::poll_event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubEvent {
    /// `sub` has deliveries: wake its connection, which pops until `None`.
    Ready {
        /// The subscriber.
        sub: SubId,
    },
    /// `sub` is gone from the hub: close its connection (WebSocket 4008, SSE end of stream).
    Disconnect {
        /// The subscriber.
        sub: SubId,
        /// Why.
        reason: DisconnectReason,
    },
}

/// Errors of the hub's inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// The filter's region is not in the hub's region tree.
    #[error("region {0} is not in this hub's region tree")]
    UnknownRegion(RegionCode),
    /// The filter selects no alert kind, so it could never match.
    #[error("the filter selects no alert kind")]
    NoKinds,
    /// A published sequence number is not above the last one (a duplicate or a reordering).
    #[error("sequence {seq} is not above the last published {last}")]
    SeqNotIncreasing {
        /// The rejected sequence number.
        seq: u64,
        /// The last accepted one.
        last: u64,
    },
}

/// A kind or severity name that is not one of the wire names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?}")]
pub struct UnknownName {
    what: &'static str,
    name: String,
}

impl UnknownName {
    fn new(what: &'static str, name: &str) -> Self {
        UnknownName {
            what,
            name: name.chars().take(32).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for k in AlertKind::ALL {
            assert_eq!(k.as_str().parse::<AlertKind>(), Ok(k));
        }
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(s));
        }
        assert!("Food".parse::<AlertKind>().is_err(), "names are lowercase");
        let long = "x".repeat(1000).parse::<Severity>().expect_err("unknown");
        assert!(long.to_string().len() < 80, "the echoed name is clipped");
    }

    #[test]
    fn severities_are_ordered_and_kind_sets_are_bitsets() {
        assert!(Severity::Extreme > Severity::Severe && Severity::Minor > Severity::Unknown);
        let set: KindSet = [AlertKind::Food, AlertKind::Market].into_iter().collect();
        assert_eq!(set.bits(), 0b1001);
        assert!(set.contains(AlertKind::Market) && !set.contains(AlertKind::Consumer));
        assert_eq!(set.iter().count(), 2);
        assert!(KindSet::EMPTY.is_empty() && KindSet::ALL.iter().count() == 4);
        let f = Filter {
            kinds: set,
            min_severity: Severity::Moderate,
            ..Filter::all(RegionCode::from_u32(330_100).expect("valid"))
        };
        assert!(f.accepts(AlertKind::Food, Severity::Moderate));
        assert!(!f.accepts(AlertKind::Food, Severity::Minor));
        assert!(!f.accepts(AlertKind::SpotCheck, Severity::Extreme));
    }
}
