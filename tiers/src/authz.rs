//! Permission checks: may this principal do this action about this region?
//!
//! The target is the region the action is about: for meeting actions the region that
//! convened the meeting; for alerts the alert's area; for walls and dashboards the region
//! shown. Three relations between the principal's region `own` and the target decide:
//!
//! - *inside*: the target is `own` or descends from it;
//! - *upward*: the target is `own` or one of its ancestors (a meeting convened by self or
//!   above: a county joins its city's and the province's meetings);
//! - *anywhere*: the target is any region of the tree.
//!
//! | role | inside | upward | anywhere |
//! |---|---|---|---|
//! | province-admin | every action | | subscribe, read archive |
//! | city-admin | convene, chair, moderate, watch, publish alert, view wall, manage | join, publish media, watch | subscribe, read archive |
//! | county-operator | publish alert, view wall | join, publish media, watch | subscribe, read archive |
//! | wall | watch, view wall | watch | subscribe, read archive |
//! | public | | | subscribe, read archive |
//!
//! A target outside the tree is always denied ("unknown target region").

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::principal::Principal;
use crate::region::{RegionCode, RegionTree};
use crate::role::Role;

/// Something a principal may try to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Open a meeting whose convening region is the target.
    ConveneMeeting,
    /// Take part in a meeting as a site (send and receive).
    JoinMeeting,
    /// Hold the chair of a meeting: give the floor, run roll call.
    ChairMeeting,
    /// Publish audio/video into a meeting.
    PublishMedia,
    /// Mute, remove, lock or end: moderation without the chair.
    ModerateMeeting,
    /// Receive a meeting without being a site (a wall's mosaic).
    WatchMeeting,
    /// Publish, update or cancel an alert for the target area.
    PublishAlert,
    /// Subscribe to the live alerts of the target area.
    SubscribeAlerts,
    /// Read archived alerts of the target area.
    ReadArchive,
    /// Show the dashboard/wall of the target region.
    ViewWall,
    /// Administer the target region (users, walls, tokens).
    ManageRegion,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 11] = [
        Action::ConveneMeeting,
        Action::JoinMeeting,
        Action::ChairMeeting,
        Action::PublishMedia,
        Action::ModerateMeeting,
        Action::WatchMeeting,
        Action::PublishAlert,
        Action::SubscribeAlerts,
        Action::ReadArchive,
        Action::ViewWall,
        Action::ManageRegion,
    ];

    /// The kebab-case name (`convene-meeting`), as serde writes it too.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ConveneMeeting => "convene-meeting",
            Action::JoinMeeting => "join-meeting",
            Action::ChairMeeting => "chair-meeting",
            Action::PublishMedia => "publish-media",
            Action::ModerateMeeting => "moderate-meeting",
            Action::WatchMeeting => "watch-meeting",
            Action::PublishAlert => "publish-alert",
            Action::SubscribeAlerts => "subscribe-alerts",
            Action::ReadArchive => "read-archive",
            Action::ViewWall => "view-wall",
            Action::ManageRegion => "manage-region",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused permission, with enough context to log and to explain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("role {role} at region {region} may not {action} for region {target}: {reason}")]
pub struct Denied {
    /// What was attempted.
    pub action: Action,
    /// The principal's role.
    pub role: Role,
    /// The principal's region.
    pub region: RegionCode,
    /// The region the action was about.
    pub target: RegionCode,
    /// Why, in a few words.
    pub reason: &'static str,
}

/// Where, relative to the principal's region, a role may perform an action.
enum Scope {
    /// Nowhere: the role never does this.
    Never,
    /// The principal's subtree.
    Inside,
    /// The principal's region or an ancestor (meetings convened by self or above).
    Upward,
    /// Inside or upward (a wall watches its subtree's meetings and those above it).
    InsideOrUpward,
    /// Any region of the tree.
    Anywhere,
}

fn scope(role: Role, action: Action) -> Scope {
    use Action::*;
    match (role, action) {
        (_, SubscribeAlerts | ReadArchive) => Scope::Anywhere,
        (Role::ProvinceAdmin, _) => Scope::Inside,
        (Role::CityAdmin, JoinMeeting | PublishMedia) => Scope::Upward,
        (Role::CityAdmin, WatchMeeting) => Scope::InsideOrUpward,
        (Role::CityAdmin, _) => Scope::Inside,
        (Role::CountyOperator, JoinMeeting | PublishMedia | WatchMeeting) => Scope::Upward,
        (Role::CountyOperator, PublishAlert | ViewWall) => Scope::Inside,
        (Role::Wall, WatchMeeting) => Scope::InsideOrUpward,
        (Role::Wall, ViewWall) => Scope::Inside,
        (Role::CountyOperator | Role::Wall | Role::Public, _) => Scope::Never,
    }
}

/// Decides whether `who` may perform `action` about region `target`.
///
/// Pure and cheap (a few tree lookups); call it on every request. The module docs hold the
/// rule table.
pub fn authorize(
    tree: &RegionTree,
    who: &Principal,
    action: Action,
    target: RegionCode,
) -> Result<(), Denied> {
    let deny = |reason| {
        Err(Denied {
            action,
            role: who.role,
            region: who.region,
            target,
            reason,
        })
    };
    if tree.get(target).is_none() {
        return deny("unknown target region");
    }
    if tree.get(who.region).is_none() {
        return deny("the principal's own region is not in the region tree");
    }
    let inside = tree.contains(who.region, target);
    let upward = tree.contains(target, who.region);
    match scope(who.role, action) {
        Scope::Anywhere => Ok(()),
        Scope::Never => deny("this role may never perform this action"),
        Scope::Inside if inside => Ok(()),
        Scope::Inside => deny("the target is outside the principal's subtree"),
        Scope::Upward if upward => Ok(()),
        Scope::Upward => {
            deny("the meeting is not convened by the principal's region or one of its ancestors")
        }
        Scope::InsideOrUpward if inside || upward => Ok(()),
        Scope::InsideOrUpward => {
            deny("the target is neither inside the principal's subtree nor one of its ancestors")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> RegionCode {
        RegionCode::parse(s).expect("valid code")
    }

    #[test]
    fn names_are_kebab_case_everywhere() {
        for action in Action::ALL {
            let json = serde_json::to_string(&action).expect("serializes");
            assert_eq!(json, format!("\"{action}\""));
        }
        assert_eq!(Action::ViewWall.to_string(), "view-wall");
    }

    #[test]
    fn denial_reads_as_a_sentence() {
        let tree = RegionTree::zhejiang();
        let who = Principal::new(&tree, "hz", Role::CityAdmin, code("330100"), None).expect("ok");
        let e = authorize(&tree, &who, Action::ConveneMeeting, code("330200")).err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some(
                "role city-admin at region 330100 may not convene-meeting for region 330200: \
                 the target is outside the principal's subtree"
            )
        );
        let e = authorize(&tree, &who, Action::ReadArchive, code("320000")).err();
        assert_eq!(e.map(|e| e.reason), Some("unknown target region"));
    }

    #[test]
    fn principal_outside_tree_is_denied() {
        let tree = RegionTree::zhejiang();
        let who = Principal {
            subject: "x".into(),
            role: Role::Public,
            region: code("320000"),
            meeting: None,
        };
        assert!(authorize(&tree, &who, Action::SubscribeAlerts, code("330000")).is_err());
    }
}
