//! The archive query: an [`ArchiveQuery`] becomes one `SELECT` (planned by [`plan`] without
//! the database, run by [`run`] on a reader connection), newest first, keyset-paged on `seq`.
//!
//! # Shape of the statement
//! ```text
//! SELECT … FROM alerts a                                   -- no full-text phrase
//!   or   FROM alerts_fts CROSS JOIN alerts a ON a.seq = alerts_fts.rowid
//!        WHERE alerts_fts MATCH '"二氧化硫" AND "西湖区"'    -- terms of ≥ 3 characters
//! WHERE  <key> < cursor                                    -- keyset: the page below the cursor
//!   AND  <key> > after                                     -- a range's lower end
//!   AND  a.seq IN (SELECT t.seq FROM alert_targets t       -- one target of the alert's reach
//!                  WHERE t.region IN (related codes)       --   (with a region; without one:
//!                    AND t.kind IN ('food', …)              --   EXISTS (… t.seq = a.seq AND …))
//!                    AND t.rank IN (2, 3, 4))
//!   AND  a.sent_unix >= from AND a.sent_unix < to
//!   AND  <text> LIKE '%杭州%' ESCAPE '\'                     -- terms of 1–2 characters
//! ORDER BY <key> DESC LIMIT limit + 1                      -- one extra row: is there a next page?
//! ```
//! With a phrase, the full-text table drives (`CROSS JOIN` fixes the order): FTS5 walks its
//! matches by rowid descending, so a page stops after `limit + 1` hits instead of collecting
//! every match. Without one, the `alerts` primary key drives, newest first. "Related codes"
//! are the region, its ancestors and its descendants in the store's [`RegionTree`]: the same
//! both-ways rule as the hub, so the archive shows what a live subscriber to that region saw.
//!
//! Values from the caller are bound as parameters; only numbers and the hub's fixed kind names
//! are written into the SQL text.

use rusqlite::Connection;
use rusqlite::types::Value;
use tiers::RegionTree;

use super::sqlite::{LISTING_COLUMNS, check_limit, select, to_sql_seq};
use super::types::{MAX_QUERY_CHARS, MAX_QUERY_TERMS};
use super::{ArchiveQuery, Cursor, Page, StoreError};
use crate::hub::{KindSet, Severity};

/// A planned archive query.
#[derive(Debug)]
pub(super) struct Plan {
    sql: String,
    params: Vec<Value>,
    limit: usize,
}

/// The audience `query` asks for, as one condition on the alert's targets (`None`: any). An
/// alert matches as live delivery routes it: by one target (region, kind, rank) of its
/// reach, its own areas with its own kind and severity or one it inherited (an Update or
/// Cancel), whose region is related to the query's (the region, its ancestors or its
/// descendants), whose kind is wanted and whose rank passes the severity filters, all three
/// on the same target. With a region the region index drives (`IN`); without one each alert
/// met newest first is checked through its own targets (`EXISTS` on the primary key), so a
/// page stops early. Kind names and ranks are this crate's own words and digits, and region
/// codes numbers: written into the SQL text, nothing from the caller.
fn audience(query: &ArchiveQuery, tree: &RegionTree) -> Result<Option<String>, StoreError> {
    let mut conds = Vec::new();
    if let Some(region) = query.region {
        if tree.get(region).is_none() {
            return Err(StoreError::UnknownRegion(region));
        }
        let related = tree
            .subtree(region)
            .map(|r| r.code)
            .chain(tree.ancestors(region));
        let codes: Vec<String> = related.map(|c| c.as_u32().to_string()).collect();
        conds.push(format!("t.region IN ({})", codes.join(", ")));
    }
    if query.kinds != KindSet::ALL {
        let kinds: Vec<String> = query
            .kinds
            .iter()
            .map(|k| format!("'{}'", k.as_str()))
            .collect();
        conds.push(format!("t.kind IN ({})", kinds.join(", ")));
    }
    let ranks: Vec<String> = Severity::ALL
        .into_iter()
        .filter(|s| *s >= query.min_severity)
        .filter(|s| query.severities.is_empty() || query.severities.contains(s))
        .map(|s| (s as u8).to_string())
        .collect();
    if ranks.is_empty() {
        return Ok(Some("0".to_owned()));
    }
    if ranks.len() < Severity::ALL.len() {
        conds.push(format!("t.rank IN ({})", ranks.join(", ")));
    }
    Ok(match (conds.is_empty(), query.region.is_some()) {
        (true, _) => None,
        (false, true) => Some(format!(
            "a.seq IN (SELECT t.seq FROM alert_targets t WHERE {})",
            conds.join(" AND ")
        )),
        (false, false) => Some(format!(
            "EXISTS (SELECT 1 FROM alert_targets t WHERE t.seq = a.seq AND {})",
            conds.join(" AND ")
        )),
    })
}

/// The statement for `query`, checked against the limits.
pub(super) fn plan(query: &ArchiveQuery, tree: &RegionTree) -> Result<Plan, StoreError> {
    check_limit(query.limit)?;
    if query.kinds.is_empty() {
        return Err(StoreError::BadQuery("the query selects no alert kind"));
    }
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from > to
    {
        return Err(StoreError::BadQuery("`from` is after `to`"));
    }
    let text = Terms::parse(query.q.as_deref())?;
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<Value> = Vec::new();

    let (from_clause, key) = match &text.phrases {
        Some(expr) => {
            conds.push("alerts_fts MATCH ?".into());
            params.push(Value::Text(expr.clone()));
            let from = "alerts_fts CROSS JOIN alerts a ON a.seq = alerts_fts.rowid";
            (from, "alerts_fts.rowid")
        }
        None => ("alerts a", "a.seq"),
    };
    for pattern in &text.likes {
        conds.push(match text.phrases {
            Some(_) => r"alerts_fts.body LIKE ? ESCAPE '\'".into(),
            None => r"EXISTS (SELECT 1 FROM alerts_fts f WHERE f.rowid = a.seq AND f.body LIKE ? ESCAPE '\')".into(),
        });
        params.push(Value::Text(pattern.clone()));
    }
    if let Some(cursor) = query.cursor {
        conds.push(format!("{key} < ?"));
        params.push(Value::Integer(to_sql_seq(cursor.seq())));
    }
    if let Some(after) = query.after {
        conds.push(format!("{key} > ?"));
        params.push(Value::Integer(to_sql_seq(after)));
    }
    if let Some(cond) = audience(query, tree)? {
        conds.push(cond);
    }
    if let Some(from) = query.from {
        conds.push("a.sent_unix >= ?".into());
        params.push(Value::Integer(from));
    }
    if let Some(to) = query.to {
        conds.push("a.sent_unix < ?".into());
        params.push(Value::Integer(to));
    }
    let filter = match conds.is_empty() {
        true => "1".to_owned(),
        false => conds.join("\n AND "),
    };
    let sql = format!(
        "SELECT {LISTING_COLUMNS} FROM {from_clause}\n WHERE {filter}\n ORDER BY {key} DESC LIMIT {}",
        query.limit + 1
    );
    Ok(Plan {
        sql,
        params,
        limit: query.limit,
    })
}

/// Runs a planned query: one page and, if more match, the cursor to the next.
pub(super) fn run(conn: &Connection, plan: &Plan) -> Result<Page, StoreError> {
    let params = rusqlite::params_from_iter(plan.params.iter());
    let mut items = select(conn, &plan.sql, params)?;
    let next_cursor = match items.len() > plan.limit {
        true => {
            items.truncate(plan.limit);
            items.last().map(|last| Cursor::below(last.seq))
        }
        false => None,
    };
    Ok(Page { items, next_cursor })
}

/// A full-text query split by term length.
#[derive(Debug, Default, PartialEq, Eq)]
struct Terms {
    /// Terms of 3 or more characters as one FTS5 expression of quoted phrases joined by AND.
    phrases: Option<String>,
    /// Terms of 1 or 2 characters as `LIKE` patterns (`%`, `_`, `\` escaped with `\`).
    likes: Vec<String>,
}

impl Terms {
    /// Splits `q` on whitespace; an absent or blank `q` is no text condition.
    fn parse(q: Option<&str>) -> Result<Terms, StoreError> {
        let Some(q) = q else {
            return Ok(Terms::default());
        };
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(StoreError::BadQuery("`q` is over 200 characters"));
        }
        if q.chars().any(|c| c.is_control() && !c.is_whitespace()) {
            return Err(StoreError::BadQuery("`q` contains control characters"));
        }
        let words: Vec<&str> = q.split_whitespace().collect();
        if words.len() > MAX_QUERY_TERMS {
            return Err(StoreError::BadQuery("`q` has more than 8 terms"));
        }
        let mut phrases = Vec::new();
        let mut likes = Vec::new();
        for word in words {
            if word.chars().count() >= 3 {
                phrases.push(format!("\"{}\"", word.replace('"', "\"\"")));
            } else {
                let mut pattern = String::from("%");
                for c in word.chars() {
                    if matches!(c, '%' | '_' | '\\') {
                        pattern.push('\\');
                    }
                    pattern.push(c);
                }
                pattern.push('%');
                likes.push(pattern);
            }
        }
        let phrases = (!phrases.is_empty()).then(|| phrases.join(" AND "));
        Ok(Terms { phrases, likes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_split_by_length_and_quote_or_escape() {
        let t = Terms::parse(Some(" 二氧化硫  杭州 a\"b\"c 5% ")).expect("parses");
        assert_eq!(t.phrases.as_deref(), Some(r#""二氧化硫" AND "a""b""c""#));
        assert_eq!(t.likes, [r"%杭州%", r"%5\%%"]);
        assert_eq!(Terms::parse(Some("   ")).expect("blank"), Terms::default());
        assert!(Terms::parse(Some(&"字".repeat(201))).is_err());
        assert!(Terms::parse(Some("a b c d e f g h i")).is_err());
        assert!(Terms::parse(Some("a\u{0}b")).is_err());
    }

    #[test]
    fn plans_bind_caller_values_and_reject_bad_requests() {
        let tree = RegionTree::zhejiang();
        let query = ArchiveQuery {
            q: Some("'); DROP TABLE alerts; --".into()),
            ..ArchiveQuery::default()
        };
        let p = plan(&query, &tree).expect("plans");
        assert!(!p.sql.contains("DROP"), "{}", p.sql);
        for bad in [
            ArchiveQuery {
                limit: 0,
                ..ArchiveQuery::default()
            },
            ArchiveQuery {
                limit: 501,
                ..ArchiveQuery::default()
            },
            ArchiveQuery {
                kinds: KindSet::EMPTY,
                ..ArchiveQuery::default()
            },
            ArchiveQuery {
                from: Some(10),
                to: Some(5),
                ..ArchiveQuery::default()
            },
        ] {
            assert!(plan(&bad, &tree).is_err(), "{bad:?}");
        }
        let outside = tiers::RegionCode::parse("110000").expect("Beijing");
        let query = ArchiveQuery {
            region: Some(outside),
            ..ArchiveQuery::default()
        };
        assert!(matches!(
            plan(&query, &tree),
            Err(StoreError::UnknownRegion(_))
        ));
    }
}
