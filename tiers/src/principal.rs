//! [`Principal`]: who is acting: a subject, a role, the region it acts for, and optionally
//! the meeting a token was issued for.
//!
//! [`Principal::new`] is the checked way in; a verified token is rebuilt through it, so a
//! principal from [`crate::TokenVerifier`] always fits the verifier's tree. A `Principal`
//! deserialized directly (its fields are public) is unchecked until [`Principal::check`].

use serde::{Deserialize, Serialize};

use crate::region::{Level, RegionCode, RegionTree};
use crate::role::Role;

/// Longest subject or meeting id accepted, in characters.
pub const MAX_ID_CHARS: usize = 128;

/// An authenticated actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Who: a user name, a wall's device id, or `public`-style anonymous id.
    pub subject: String,
    /// What kind of actor.
    pub role: Role,
    /// The region it acts for (its bureau, or the region a wall displays).
    pub region: RegionCode,
    /// If set, the credential is only good for this meeting.
    pub meeting: Option<String>,
}

/// Why a principal was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    /// The subject is empty, longer than 128 characters, or holds a control character.
    #[error("invalid subject: {0}")]
    InvalidSubject(&'static str),
    /// The meeting id is not a room name: 1–64 of `A-Z a-z 0-9 - _` (what `/whip/{room}`
    /// accepts, so a token can only be bound to a meeting that can exist).
    #[error("invalid meeting id: {0}")]
    InvalidMeeting(&'static str),
    /// The region is not in the deployment's region tree.
    #[error("region {0} is not in the region tree")]
    UnknownRegion(RegionCode),
    /// The role needs a region of another level (a city-admin of a county).
    #[error("role {role} needs a {required}-level region, but {region} is a {level}")]
    LevelMismatch {
        /// The role asked for.
        role: Role,
        /// The region given.
        region: RegionCode,
        /// That region's level.
        level: Level,
        /// The level the role needs.
        required: Level,
    },
}

impl Principal {
    /// Builds a principal and checks it against `tree`: the region exists; province-admin
    /// sits at a province, city-admin at a city, county-operator at a county (wall and public
    /// at any level); the subject is 1–128 characters without control characters, the meeting id a room name.
    pub fn new(
        tree: &RegionTree,
        subject: impl Into<String>,
        role: Role,
        region: RegionCode,
        meeting: Option<String>,
    ) -> Result<Principal, PrincipalError> {
        let principal = Principal {
            subject: subject.into(),
            role,
            region,
            meeting,
        };
        principal.check(tree)?;
        Ok(principal)
    }

    /// Checks an already-built principal against `tree` (see [`Principal::new`]).
    pub fn check(&self, tree: &RegionTree) -> Result<(), PrincipalError> {
        self.check_shape()?;
        if tree.get(self.region).is_none() {
            return Err(PrincipalError::UnknownRegion(self.region));
        }
        Ok(())
    }

    /// The checks that need no tree: identifiers, and the role's level against the level the
    /// region code names. Used by the token issuer, which holds no tree.
    pub fn check_shape(&self) -> Result<(), PrincipalError> {
        check_id(&self.subject).map_err(PrincipalError::InvalidSubject)?;
        if let Some(meeting) = &self.meeting {
            check_room_name(meeting).map_err(PrincipalError::InvalidMeeting)?;
        }
        let level = self.region.level();
        match self.role.required_level() {
            Some(required) if required != level => Err(PrincipalError::LevelMismatch {
                role: self.role,
                region: self.region,
                level,
                required,
            }),
            _ => Ok(()),
        }
    }
}

/// Whether `name` is a room (meeting) name: 1–64 of `A-Z a-z 0-9 - _`, as the media
/// endpoints take it and a token's meeting must be.
pub fn is_room_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_room_name(name: &str) -> Result<(), &'static str> {
    is_room_name(name)
        .then_some(())
        .ok_or("must be 1-64 characters of A-Z, a-z, 0-9, '-' and '_' (a room name)")
}

fn check_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        Err("must not be empty")
    } else if id.chars().count() > MAX_ID_CHARS {
        Err("must be at most 128 characters")
    } else if id.chars().any(char::is_control) {
        Err("must not contain control characters")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> RegionCode {
        RegionCode::parse(s).expect("valid code")
    }

    #[test]
    fn roles_need_matching_levels() {
        let tree = RegionTree::zhejiang();
        let ok = |role, region| Principal::new(&tree, "alice", role, code(region), None).is_ok();
        assert!(ok(Role::ProvinceAdmin, "330000"));
        assert!(!ok(Role::ProvinceAdmin, "330100"));
        assert!(ok(Role::CityAdmin, "330100"));
        assert!(!ok(Role::CityAdmin, "330000") && !ok(Role::CityAdmin, "330106"));
        assert!(ok(Role::CountyOperator, "330106"));
        assert!(!ok(Role::CountyOperator, "330100"));
        for region in ["330000", "330100", "330106"] {
            assert!(
                ok(Role::Wall, region) && ok(Role::Public, region),
                "{region}"
            );
        }
    }

    #[test]
    fn region_must_be_in_the_tree() {
        let tree = RegionTree::zhejiang();
        let e = Principal::new(&tree, "bob", Role::ProvinceAdmin, code("320000"), None);
        assert_eq!(e, Err(PrincipalError::UnknownRegion(code("320000"))));
        let e = Principal::new(&tree, "bob", Role::Wall, code("330199"), None);
        assert_eq!(e, Err(PrincipalError::UnknownRegion(code("330199"))));
    }

    #[test]
    fn subject_and_meeting_rules() {
        let tree = RegionTree::zhejiang();
        let make = |subject: &str, meeting: Option<&str>| {
            Principal::new(
                &tree,
                subject,
                Role::Wall,
                code("330100"),
                meeting.map(str::to_owned),
            )
        };
        assert!(make("wall-hz-01", Some("m-2024-001")).is_ok());
        assert!(make(&"x".repeat(128), None).is_ok());
        assert!(make("浙江省局值班员", None).is_ok(), "non-ASCII is fine");
        assert!(matches!(
            make("", None),
            Err(PrincipalError::InvalidSubject(_))
        ));
        assert!(matches!(
            make(&"x".repeat(129), None),
            Err(PrincipalError::InvalidSubject(_))
        ));
        assert!(matches!(
            make("a\nb", None),
            Err(PrincipalError::InvalidSubject(_))
        ));
        assert!(matches!(
            make("a", Some("")),
            Err(PrincipalError::InvalidMeeting(_))
        ));
        assert!(matches!(
            make("a", Some("m\u{0}")),
            Err(PrincipalError::InvalidMeeting(_))
        ));
        // A meeting is a room: a name no room can have is refused.
        for bad in ["a b", "a/..", "会议", &"m".repeat(65)] {
            assert!(
                matches!(make("a", Some(bad)), Err(PrincipalError::InvalidMeeting(_))),
                "{bad}"
            );
        }
        assert!(make("a", Some(&"m".repeat(64))).is_ok());
    }

    #[test]
    fn serde_round_trip() {
        let tree = RegionTree::zhejiang();
        let p = Principal::new(&tree, "carol", Role::CityAdmin, code("330200"), None).expect("ok");
        let json = serde_json::to_string(&p).expect("serializes");
        assert_eq!(
            json,
            r#"{"subject":"carol","role":"city-admin","region":"330200","meeting":null}"#
        );
        assert_eq!(serde_json::from_str::<Principal>(&json).ok(), Some(p));
    }
}
