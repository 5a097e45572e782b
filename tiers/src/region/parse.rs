//! The region file format and its validation.
//!
//! UTF-8 text. Blank lines and lines starting with `#` are ignored (a leading byte-order mark
//! is skipped). Every other line is one region: four TAB-separated fields
//! `code  parent  name_zh  name_en`, with `parent` empty for the single root. The level comes
//! from the code. Rows may come in any order.
//!
//! Checks, in order: per line (field count, codes, names, duplicates, a second root), then per
//! region in line order (the parent exists, is one level up, and is the parent the code names);
//! finally that something was defined. Every error names a line.

use std::collections::HashMap;

use super::tree::{Region, RegionTree};
use super::{RegionCode, RegionError, clip};

/// Longest name accepted, in characters.
const MAX_NAME_CHARS: usize = 64;

struct Row {
    line: usize,
    region: Region,
}

pub(super) fn parse(text: &str) -> Result<RegionTree, RegionError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows: Vec<Row> = Vec::new();
    let mut seen: HashMap<RegionCode, usize> = HashMap::new();
    let mut root: Option<(RegionCode, usize)> = None;
    let mut lines = 0;

    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        lines = line;
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let region = parse_line(line, raw)?;
        if let Some(&first) = seen.get(&region.code) {
            return Err(RegionError::Duplicate {
                line,
                code: region.code,
                first,
            });
        }
        seen.insert(region.code, line);
        if region.parent.is_none() {
            if let Some((root, root_line)) = root {
                return Err(RegionError::MultipleRoots {
                    line,
                    code: region.code,
                    root,
                    root_line,
                });
            }
            root = Some((region.code, line));
        }
        rows.push(Row { line, region });
    }
    if rows.is_empty() {
        return Err(RegionError::Empty { lines });
    }

    let by_code: HashMap<RegionCode, &Region> =
        rows.iter().map(|r| (r.region.code, &r.region)).collect();
    for Row { line, region } in &rows {
        let (line, code) = (*line, region.code);
        let Some(parent) = region.parent else {
            continue;
        };
        let Some(parent_region) = by_code.get(&parent) else {
            return Err(RegionError::UnknownParent { line, code, parent });
        };
        if region.level.above() != Some(parent_region.level) {
            return Err(RegionError::LevelMismatch {
                line,
                code,
                level: region.level,
                parent,
                parent_level: parent_region.level,
            });
        }
        if let Some(expected) = code.structural_parent().filter(|&e| e != parent) {
            return Err(RegionError::ParentMismatch {
                line,
                code,
                parent,
                expected,
            });
        }
    }
    Ok(RegionTree::from_validated(
        rows.into_iter().map(|r| r.region).collect(),
    ))
}

fn parse_line(line: usize, raw: &str) -> Result<Region, RegionError> {
    let fields: Vec<&str> = raw.split('\t').collect();
    let [code, parent, name_zh, name_en] = fields[..] else {
        return Err(RegionError::Syntax {
            line,
            message: format!(
                "expected 4 tab-separated fields (code, parent, name_zh, name_en), found {}",
                fields.len()
            ),
        });
    };
    let code = parse_code(line, code)?;
    let parent = match parent.trim() {
        "" => None,
        p => Some(parse_code(line, p)?),
    };
    Ok(Region {
        code,
        name_zh: parse_name(line, "name_zh", name_zh)?,
        name_en: parse_name(line, "name_en", name_en)?,
        level: code.level(),
        parent,
    })
}

fn parse_code(line: usize, field: &str) -> Result<RegionCode, RegionError> {
    RegionCode::parse(field.trim()).map_err(|e| match e {
        RegionError::InvalidCode { input, reason } => RegionError::MalformedCode {
            line,
            input,
            reason,
        },
        _ => RegionError::MalformedCode {
            line,
            input: clip(field),
            reason: "invalid code",
        },
    })
}

fn parse_name(line: usize, column: &str, field: &str) -> Result<String, RegionError> {
    let name = field.trim();
    let problem = if name.is_empty() {
        Some("is empty")
    } else if name.chars().count() > MAX_NAME_CHARS {
        Some("is longer than 64 characters")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(RegionError::Syntax {
            line,
            message: format!("{column} {problem}"),
        }),
        None => Ok(name.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "# comment\n\n330000\t\t浙江省\tZhejiang\n330100\t330000\t杭州市\tHangzhou\n\
                         330106\t330100\t西湖区\tXihu District\n";

    fn err(text: &str) -> RegionError {
        match RegionTree::parse(text) {
            Ok(_) => panic!("expected an error for {text:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_small_file_in_any_order_with_crlf_and_bom() {
        let tree = RegionTree::parse(SMALL).expect("valid");
        assert_eq!(tree.len(), 3);
        let shuffled = "\u{feff}330106\t330100\t西湖区\tXihu District\r\n330000\t\t浙江省\tZhejiang\r\n\
                        330100\t330000\t杭州市\tHangzhou\r\n";
        let tree2 = RegionTree::parse(shuffled).expect("valid");
        assert_eq!(tree2.root().as_u32(), 330_000);
        assert_eq!(tree2.children(tree2.root()).len(), 1);
    }

    #[test]
    fn a_city_may_be_the_root() {
        let tree = RegionTree::parse("330100\t\t杭州市\tHangzhou\n330106\t330100\t西湖区\tXihu\n");
        assert_eq!(tree.map(|t| t.root().as_u32()).ok(), Some(330_100));
    }

    #[test]
    fn empty_files() {
        assert_eq!(err(""), RegionError::Empty { lines: 0 });
        assert_eq!(err("# only\n\n   \n"), RegionError::Empty { lines: 3 });
    }

    #[test]
    fn duplicate_code_names_both_lines() {
        let e = err(&format!("{SMALL}330100\t330000\t杭州市\tHangzhou\n"));
        assert!(
            matches!(
                e,
                RegionError::Duplicate {
                    line: 6,
                    first: 4,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("line 6: duplicate region code 330100"),
            "{e}"
        );
    }

    #[test]
    fn missing_parent() {
        let e = err("330000\t\t浙江省\tZhejiang\n330106\t330100\t西湖区\tXihu District\n");
        assert!(
            matches!(e, RegionError::UnknownParent { line: 2, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn malformed_codes() {
        let e = err("33000\t\t浙江省\tZhejiang\n");
        assert!(
            matches!(e, RegionError::MalformedCode { line: 1, .. }),
            "{e:?}"
        );
        let e = err("330000\t\t浙江省\tZhejiang\n330100\t33000x\t杭州市\tHangzhou\n");
        assert!(
            matches!(e, RegionError::MalformedCode { line: 2, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn county_under_county_is_a_level_mismatch() {
        let e = err(&format!(
            "{SMALL}330105\t330106\t拱墅区\tGongshu District\n"
        ));
        assert!(
            matches!(e, RegionError::LevelMismatch { line: 6, .. }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "line 6: 330105 is a county and cannot sit under 330106, a county"
        );
        let e = err("330000\t\t浙江省\tZhejiang\n330106\t330000\t西湖区\tXihu District\n");
        assert!(
            matches!(e, RegionError::LevelMismatch { line: 2, .. }),
            "county under province"
        );
    }

    #[test]
    fn parent_must_be_the_one_the_code_names() {
        let text = format!(
            "{SMALL}330200\t330000\t宁波市\tNingbo\n330203\t330100\t海曙区\tHaishu District\n"
        );
        let e = err(&text);
        assert!(
            matches!(e, RegionError::ParentMismatch { line: 7, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn more_than_one_root() {
        let e = err(&format!("{SMALL}320000\t\t江苏省\tJiangsu\n"));
        assert!(
            matches!(
                e,
                RegionError::MultipleRoots {
                    line: 6,
                    root_line: 3,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn syntax_errors() {
        for (text, line) in [
            ("330000\t浙江省\tZhejiang\n", 1),
            ("# c\n330000\t\t浙江省\tZhejiang\textra\n", 2),
            ("330000\t\t\tZhejiang\n", 1),
            ("330000\t\t浙江省\t \n", 1),
            ("330000\t\t浙江\u{7}省\tZhejiang\n", 1),
            ("330000 330100 浙江省 Zhejiang\n", 1),
        ] {
            let e = err(text);
            assert!(
                matches!(e, RegionError::Syntax { line: l, .. } if l == line),
                "{text:?}: {e:?}"
            );
        }
    }
}
