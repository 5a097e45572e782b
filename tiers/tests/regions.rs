//! The shipped region data and the region file parser, through the public API.

use tiers::{Level, RegionCode, RegionError, RegionTree};

fn code(s: &str) -> RegionCode {
    RegionCode::parse(s).expect("valid code")
}

#[test]
fn default_tree_has_one_province_eleven_cities_ninety_counties() {
    let tree = RegionTree::zhejiang();
    let count = |level| tree.iter().filter(|r| r.level == level).count();
    assert_eq!(
        (
            count(Level::Province),
            count(Level::City),
            count(Level::County)
        ),
        (1, 11, 90)
    );
    assert_eq!(tree.root(), code("330000"));
    assert!(
        tree.iter().all(|r| r.name_zh != "市辖区"),
        "placeholders are excluded"
    );
    let lishui = tree.get(code("331100")).expect("Lishui");
    assert_eq!(
        (lishui.name_zh.as_str(), lishui.name_en.as_str()),
        ("丽水市", "Lishui")
    );
}

#[test]
fn xihu_parent_and_ancestors() {
    let tree = RegionTree::zhejiang();
    assert_eq!(tree.parent(code("330106")), Some(code("330100")));
    assert_eq!(
        tree.ancestors(code("330106")).collect::<Vec<_>>(),
        [code("330100"), code("330000")]
    );
    assert!(tree.contains(code("330100"), code("330106")));
    assert!(!tree.contains(code("330106"), code("330100")));
}

#[test]
fn every_county_count_per_city() {
    let tree = RegionTree::zhejiang();
    let per_city: Vec<usize> = tree
        .children(tree.root())
        .iter()
        .map(|&c| tree.children(c).len())
        .collect();
    // Hangzhou 13, Ningbo 10, Wenzhou 12, Jiaxing 7, Huzhou 5, Shaoxing 6, Jinhua 9,
    // Quzhou 6, Zhoushan 4, Taizhou 9, Lishui 9 (2023 divisions).
    assert_eq!(per_city, [13, 10, 12, 7, 5, 6, 9, 6, 4, 9, 9]);
    assert_eq!(per_city.iter().sum::<usize>(), 90);
}

#[test]
fn parse_errors_name_lines() {
    type Check = fn(&RegionError) -> bool;
    let cases: [(&str, Check); 6] = [
        ("", |e| matches!(e, RegionError::Empty { .. })),
        (
            "330000\t\t浙江省\tZhejiang\n330000\t\t浙江省\tZhejiang\n",
            |e| {
                matches!(
                    e,
                    RegionError::Duplicate {
                        line: 2,
                        first: 1,
                        ..
                    }
                )
            },
        ),
        (
            "330000\t\t浙江省\tZhejiang\n330106\t330100\t西湖区\tXihu District\n",
            |e| matches!(e, RegionError::UnknownParent { line: 2, .. }),
        ),
        ("3300\t\t浙江省\tZhejiang\n", |e| {
            matches!(e, RegionError::MalformedCode { line: 1, .. })
        }),
        (
            "330000\t\t浙江省\tZhejiang\n330100\t330000\t杭州市\tHangzhou\n\
             330106\t330100\t西湖区\tXihu\n330105\t330106\t拱墅区\tGongshu\n",
            |e| matches!(e, RegionError::LevelMismatch { line: 4, .. }),
        ),
        (
            "330000\t\t浙江省\tZhejiang\n320000\t\t江苏省\tJiangsu\n",
            |e| matches!(e, RegionError::MultipleRoots { line: 2, .. }),
        ),
    ];
    for (text, check) in cases {
        let e = RegionTree::parse(text).expect_err("must fail");
        assert!(check(&e), "{text:?}: {e:?}");
        assert!(e.to_string().starts_with("line "), "{e}");
    }
}

#[test]
fn garbage_never_panics() {
    let samples = [
        "\t\t\t",
        "\t",
        "#",
        "\u{feff}",
        "330000\t\t\u{0}\t",
        "999999\t\tX\tY\n999901\t999900\tA\tB",
        "330000\t330000\t浙江省\tZhejiang",
        "\n\n\n\t\t\t\n",
        "330100\t\t杭州\tH\n330100\t\t杭州\tH",
    ];
    for s in samples {
        let _ = RegionTree::parse(s);
    }
    let big = "330000\t\t浙江省\tZhejiang\n".repeat(10_000);
    assert!(RegionTree::parse(&big).is_err());
}
