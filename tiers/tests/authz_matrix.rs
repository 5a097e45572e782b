//! Every role × every action × every target relation, spelled out as a table.
//!
//! Columns are the target's relation to the principal's region:
//! `own` (the region itself), `child` (its first child), `sibling` (the first other child of
//! its parent), `parent`, and `other` (320000 Jiangsu: a valid code that is not in the tree).
//! Cells: `A` allowed, `D` denied, `-` the relation does not exist for that region:
//! - a province (330000, the root of a one-province tree) has no sibling and no parent;
//! - a county (330106) has no child. Its row keeps the `-` and the county is instead covered
//!   through its other four relations; the city rows cover "child is a county".
//!
//! Wall and public may sit at any level, so walls are tabled at all three levels and the
//! public at a city. The expectations are written by hand from the rules in DOMAIN.md and the
//! brief, never computed by the code under test.

use tiers::{Action, Principal, RegionCode, RegionTree, Role, authorize};

const RELATIONS: [&str; 5] = ["own", "child", "sibling", "parent", "other"];

/// `(action, cells for own child sibling parent other)`.
type Row = (&'static str, &'static str);
/// `(role, principal region, one row per action)`.
type Block = (&'static str, &'static str, &'static [Row]);

#[rustfmt::skip]
const TABLE: &[Block] = &[
    ("province-admin", "330000", &[
        //                   own child sibling parent other
        ("convene-meeting",  "A A - - D"),
        ("join-meeting",     "A A - - D"),
        ("chair-meeting",    "A A - - D"),
        ("publish-media",    "A A - - D"),
        ("moderate-meeting", "A A - - D"),
        ("watch-meeting",    "A A - - D"),
        ("publish-alert",    "A A - - D"),
        ("subscribe-alerts", "A A - - D"),
        ("read-archive",     "A A - - D"),
        ("view-wall",        "A A - - D"),
        ("manage-region",    "A A - - D"),
    ]),
    ("city-admin", "330100", &[
        ("convene-meeting",  "A A D D D"),
        ("join-meeting",     "A D D A D"),
        ("chair-meeting",    "A A D D D"),
        ("publish-media",    "A D D A D"),
        ("moderate-meeting", "A A D D D"),
        ("watch-meeting",    "A A D A D"),
        ("publish-alert",    "A A D D D"),
        ("subscribe-alerts", "A A A A D"),
        ("read-archive",     "A A A A D"),
        ("view-wall",        "A A D D D"),
        ("manage-region",    "A A D D D"),
    ]),
    ("county-operator", "330106", &[
        ("convene-meeting",  "D - D D D"),
        ("join-meeting",     "A - D A D"),
        ("chair-meeting",    "D - D D D"),
        ("publish-media",    "A - D A D"),
        ("moderate-meeting", "D - D D D"),
        ("watch-meeting",    "A - D A D"),
        ("publish-alert",    "A - D D D"),
        ("subscribe-alerts", "A - A A D"),
        ("read-archive",     "A - A A D"),
        ("view-wall",        "A - D D D"),
        ("manage-region",    "D - D D D"),
    ]),
    ("wall", "330000", &[
        ("convene-meeting",  "D D - - D"),
        ("join-meeting",     "D D - - D"),
        ("chair-meeting",    "D D - - D"),
        ("publish-media",    "D D - - D"),
        ("moderate-meeting", "D D - - D"),
        ("watch-meeting",    "A A - - D"),
        ("publish-alert",    "D D - - D"),
        ("subscribe-alerts", "A A - - D"),
        ("read-archive",     "A A - - D"),
        ("view-wall",        "A A - - D"),
        ("manage-region",    "D D - - D"),
    ]),
    ("wall", "330100", &[
        ("convene-meeting",  "D D D D D"),
        ("join-meeting",     "D D D D D"),
        ("chair-meeting",    "D D D D D"),
        ("publish-media",    "D D D D D"),
        ("moderate-meeting", "D D D D D"),
        ("watch-meeting",    "A A D A D"),
        ("publish-alert",    "D D D D D"),
        ("subscribe-alerts", "A A A A D"),
        ("read-archive",     "A A A A D"),
        ("view-wall",        "A A D D D"),
        ("manage-region",    "D D D D D"),
    ]),
    ("wall", "330106", &[
        ("convene-meeting",  "D - D D D"),
        ("join-meeting",     "D - D D D"),
        ("chair-meeting",    "D - D D D"),
        ("publish-media",    "D - D D D"),
        ("moderate-meeting", "D - D D D"),
        ("watch-meeting",    "A - D A D"),
        ("publish-alert",    "D - D D D"),
        ("subscribe-alerts", "A - A A D"),
        ("read-archive",     "A - A A D"),
        ("view-wall",        "A - D D D"),
        ("manage-region",    "D - D D D"),
    ]),
    ("public", "330100", &[
        ("convene-meeting",  "D D D D D"),
        ("join-meeting",     "D D D D D"),
        ("chair-meeting",    "D D D D D"),
        ("publish-media",    "D D D D D"),
        ("moderate-meeting", "D D D D D"),
        ("watch-meeting",    "D D D D D"),
        ("publish-alert",    "D D D D D"),
        ("subscribe-alerts", "A A A A D"),
        ("read-archive",     "A A A A D"),
        ("view-wall",        "D D D D D"),
        ("manage-region",    "D D D D D"),
    ]),
];

fn code(s: &str) -> RegionCode {
    RegionCode::parse(s).expect("valid code")
}

/// The target for each relation, or `None` where the relation does not exist.
fn targets(tree: &RegionTree, own: RegionCode) -> [Option<RegionCode>; 5] {
    let parent = tree.parent(own);
    let sibling = parent.and_then(|p| tree.children(p).iter().copied().find(|&c| c != own));
    let child = tree.children(own).first().copied();
    [Some(own), child, sibling, parent, Some(code("320000"))]
}

#[test]
fn every_role_action_and_relation() {
    let tree = RegionTree::zhejiang();
    let mut roles_seen = Vec::new();
    let mut checked = 0;
    for &(role, region, rows) in TABLE {
        let role: Role = role.parse().expect("known role");
        roles_seen.push(role);
        let who =
            Principal::new(&tree, "tester", role, code(region), None).expect("valid principal");
        let actions: Vec<Action> = rows
            .iter()
            .map(|(name, _)| {
                *Action::ALL
                    .iter()
                    .find(|a| a.to_string() == *name)
                    .expect("known action")
            })
            .collect();
        assert_eq!(
            actions,
            Action::ALL.to_vec(),
            "{role}@{region}: rows must list Action::ALL in order"
        );
        for ((_, cells), action) in rows.iter().zip(actions) {
            let cells: Vec<&str> = cells.split_whitespace().collect();
            assert_eq!(cells.len(), 5, "{role}@{region} {action}");
            for ((cell, target), relation) in
                cells.iter().zip(targets(&tree, who.region)).zip(RELATIONS)
            {
                let Some(target) = target else {
                    assert_eq!(
                        *cell, "-",
                        "{role}@{region} has no {relation}; the cell must be '-'"
                    );
                    continue;
                };
                let got = authorize(&tree, &who, action, target);
                let want = match *cell {
                    "A" => true,
                    "D" => false,
                    other => panic!("{role}@{region} {action} {relation}: bad cell {other:?}"),
                };
                assert_eq!(
                    got.is_ok(),
                    want,
                    "{role}@{region} {action} on {relation} {target}: got {got:?}"
                );
                if relation == "other" {
                    assert_eq!(got.err().map(|d| d.reason), Some("unknown target region"));
                }
                checked += 1;
            }
        }
    }
    for role in Role::ALL {
        assert!(roles_seen.contains(&role), "{role} has no rows");
    }
    assert_eq!(
        checked,
        7 * 11 * 5 - 11 * (2 + 1 + 2 + 1),
        "every existing cell checked once"
    );
}

#[test]
fn relation_targets_are_the_documented_ones() {
    let tree = RegionTree::zhejiang();
    let shown = |own| targets(&tree, code(own)).map(|t| t.map(|c| c.to_string()));
    let s = |x: &str| Some(x.to_owned());
    assert_eq!(
        shown("330000"),
        [s("330000"), s("330100"), None, None, s("320000")]
    );
    assert_eq!(
        shown("330100"),
        [
            s("330100"),
            s("330102"),
            s("330200"),
            s("330000"),
            s("320000")
        ]
    );
    assert_eq!(
        shown("330106"),
        [s("330106"), None, s("330102"), s("330100"), s("320000")]
    );
}

#[test]
fn deeper_relations() {
    // Beyond the table: a grandchild for the province, a cousin county for a city admin.
    let tree = RegionTree::zhejiang();
    let prov = Principal::new(&tree, "p", Role::ProvinceAdmin, code("330000"), None).expect("ok");
    let city = Principal::new(&tree, "c", Role::CityAdmin, code("330100"), None).expect("ok");
    let county =
        Principal::new(&tree, "x", Role::CountyOperator, code("330106"), None).expect("ok");
    assert!(authorize(&tree, &prov, Action::PublishAlert, code("331127")).is_ok());
    assert!(authorize(&tree, &city, Action::PublishAlert, code("330203")).is_err());
    assert!(
        authorize(&tree, &county, Action::JoinMeeting, code("330000")).is_ok(),
        "grandparent"
    );
    assert!(
        authorize(&tree, &county, Action::JoinMeeting, code("330200")).is_err(),
        "other city"
    );
}
