//! Who may publish under a CAP `sender`.
//!
//! CAP's `sender` names the originator ("scjg.zj.gov.cn"); subscribers and other agencies
//! trust it to say which bureau speaks. A token only says which region its holder acts for,
//! so without a binding a county could publish under the province's sender, or take that
//! sender's next identifier first (the real alert would then be a 409 conflict).
//!
//! The store binds every sender to one region, the **owner**:
//! - [`SenderRule::FirstUse`] (the default): the first region to publish under a sender owns
//!   it; any other region is refused with [`StoreError::SenderTaken`].
//! - [`SenderRule::Configured`]: deployment config (`alerts.senders`) names the publisher's
//!   region as the sender's owner; the append (re)binds it there. The HTTP layer has already
//!   refused every other region, so config wins over an earlier first use.
//!
//! The check and the binding happen inside the append's own transaction (SQLite) or script
//! (Redis), so two regions racing for a new sender cannot both win. A re-post of a stored
//! alert is checked too: it answers with the stored record, which another region has no
//! business confirming. Senders stored before bindings existed are bound to the region in
//! their first alert's publisher label (`role@region subject`): by SQLite's schema 2, and by
//! the Redis store once per log when it opens.

use rusqlite::{Connection, OptionalExtension, params};
use tiers::RegionCode;

use super::StoreError;

/// Who publishes an alert, as the store records and checks it.
#[derive(Clone, Copy)]
pub struct Publisher<'a> {
    /// The audit label kept with the record (role, region and subject; at most 256 bytes).
    pub label: &'a str,
    /// The region the publisher acts for: the owner of a sender it binds.
    pub region: RegionCode,
    /// How the alert's sender is checked against that region.
    pub rule: SenderRule,
    /// Whether the publisher may publish to a region. An Update or Cancel reaches the regions
    /// of what it references, so the append asks this of every region of the alerts its
    /// references resolve to, the very ones it then inherits (refused:
    /// [`StoreError::ReferenceOutOfReach`]). `None`: no such check (imports, tests).
    pub may_reach: Option<&'a (dyn Fn(RegionCode) -> bool + Sync)>,
}

impl std::fmt::Debug for Publisher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("label", &self.label)
            .field("region", &self.region)
            .field("rule", &self.rule)
            .field("may_reach", &self.may_reach.is_some())
            .finish()
    }
}

/// How an append checks the alert's `sender` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderRule {
    /// The sender's first publishing region owns it; others are refused.
    FirstUse,
    /// Config names the publisher's region as the owner: bind it there, whoever held it.
    Configured,
}

impl SenderRule {
    /// The rule's name in the Redis append script's arguments.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            SenderRule::FirstUse => "first",
            SenderRule::Configured => "configured",
        }
    }
}

/// Refuses a publisher acting for `region` if `owner` (the sender's current owner, if any) is
/// another region and `rule` does not rebind.
pub(super) fn check(
    sender: &str,
    owner: Option<RegionCode>,
    region: RegionCode,
    rule: SenderRule,
) -> Result<(), StoreError> {
    match owner {
        Some(owner) if owner != region && rule == SenderRule::FirstUse => {
            Err(StoreError::SenderTaken {
                sender: sender.to_owned(),
                owner,
            })
        }
        _ => Ok(()),
    }
}

/// The region that owns `sender` in the SQLite store, inside the caller's transaction.
pub(super) fn owner(tx: &Connection, sender: &str) -> Result<Option<RegionCode>, StoreError> {
    let code: Option<u32> = tx
        .query_row(
            "SELECT region FROM senders WHERE sender = ?1",
            params![sender],
            |r| r.get(0),
        )
        .optional()?;
    match code {
        None => Ok(None),
        Some(code) => RegionCode::from_u32(code)
            .map(Some)
            .map_err(|err| StoreError::Corrupt {
                seq: 0,
                reason: format!("sender {sender:?} is bound to an invalid region {code}: {err}"),
            }),
    }
}

/// Binds `sender` to `region` after an append numbered `seq`, inside its transaction: a new
/// binding under [`SenderRule::FirstUse`], a rebinding under [`SenderRule::Configured`].
pub(super) fn bind(
    tx: &Connection,
    sender: &str,
    region: RegionCode,
    rule: SenderRule,
    seq: i64,
) -> Result<(), StoreError> {
    let sql = match rule {
        SenderRule::FirstUse => {
            "INSERT OR IGNORE INTO senders (sender, region, since_seq) VALUES (?1, ?2, ?3)"
        }
        SenderRule::Configured => {
            "INSERT INTO senders (sender, region, since_seq) VALUES (?1, ?2, ?3)
             ON CONFLICT (sender) DO UPDATE SET region = excluded.region,
                 since_seq = excluded.since_seq WHERE region != excluded.region"
        }
    };
    tx.prepare_cached(sql)?
        .execute(params![sender, region.as_u32(), seq])?;
    Ok(())
}
