//! [`Role`]: what kind of actor a principal is (DOMAIN.md "People and roles").
//!
//! The wire names (`province-admin`, `city-admin`, `county-operator`, `wall`, `public`) are
//! used alike by serde, [`FromStr`] and [`Display`](fmt::Display), so a role reads the same in
//! a JWT, a config file and a log line.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::region::{Level, clip};

/// The kind of actor a principal is. Which regions it acts on is the principal's business;
/// what it may do there is [`crate::authorize`]'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Province bureau staff: convenes province-wide meetings, publishes for any region.
    ProvinceAdmin,
    /// A city bureau: convenes meetings of its city and counties, publishes for its subtree.
    CityAdmin,
    /// A county bureau: joins meetings it is invited to, publishes for its county.
    CountyOperator,
    /// A command-center display: watches meetings and dashboards, never publishes.
    Wall,
    /// Anyone, no login: subscribes to public alerts and reads the archive.
    Public,
}

/// A role name that is none of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected province-admin, city-admin, county-operator, wall or public")]
pub struct UnknownRole(
    /// The rejected name, cut to 32 characters.
    pub String,
);

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 5] = [
        Role::ProvinceAdmin,
        Role::CityAdmin,
        Role::CountyOperator,
        Role::Wall,
        Role::Public,
    ];

    /// The wire name (`city-admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ProvinceAdmin => "province-admin",
            Role::CityAdmin => "city-admin",
            Role::CountyOperator => "county-operator",
            Role::Wall => "wall",
            Role::Public => "public",
        }
    }

    /// The level a principal's region must have for this role; `None` for roles that may sit
    /// at any level (a wall in any command center, the public anywhere).
    pub fn required_level(self) -> Option<Level> {
        match self {
            Role::ProvinceAdmin => Some(Level::Province),
            Role::CityAdmin => Some(Level::City),
            Role::CountyOperator => Some(Level::County),
            Role::Wall | Role::Public => None,
        }
    }

    /// True for the three bureau roles, which are sites in meetings and authors of alerts.
    pub fn is_bureau(self) -> bool {
        self.required_level().is_some()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(clip(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_agree_across_serde_fromstr_and_display() {
        for role in Role::ALL {
            let json = serde_json::to_string(&role).expect("serializes");
            assert_eq!(json, format!("\"{role}\""));
            assert_eq!(serde_json::from_str::<Role>(&json).ok(), Some(role));
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert_eq!(Role::CountyOperator.to_string(), "county-operator");
    }

    #[test]
    fn unknown_names_are_rejected() {
        for bad in [
            "",
            "admin",
            "Province-Admin",
            "province_admin",
            "wall ",
            "root",
        ] {
            assert!(bad.parse::<Role>().is_err(), "{bad:?}");
            assert!(
                serde_json::from_str::<Role>(&format!("\"{bad}\"")).is_err(),
                "{bad:?}"
            );
        }
        let e = "superuser"
            .parse::<Role>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("\"superuser\""), "{e}");
    }

    #[test]
    fn levels() {
        assert_eq!(Role::ProvinceAdmin.required_level(), Some(Level::Province));
        assert_eq!(Role::CityAdmin.required_level(), Some(Level::City));
        assert_eq!(Role::CountyOperator.required_level(), Some(Level::County));
        assert_eq!(Role::Wall.required_level(), None);
        assert!(Role::CityAdmin.is_bureau() && !Role::Public.is_bureau());
    }
}
