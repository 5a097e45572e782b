//! [`RegionTree`]: the validated set of regions one deployment serves, and its queries.
//!
//! Architecture invariant: a `RegionTree` is only built by [`RegionTree::parse`] (directly or
//! through [`RegionTree::zhejiang`]), so every value has exactly one root, every other region's
//! parent is in the tree and is the parent its code names, and levels step down one at a time.
//! Queries therefore never fail; asking about a code outside the tree gives `None`, an empty
//! slice or `false`.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::{Level, RegionCode, RegionError};

/// The shipped default region file: Zhejiang, 1 province, 11 cities, 90 county-level
/// divisions. Its header says where it came from and how it was generated.
const ZHEJIANG_TSV: &str = include_str!("../../data/zhejiang.tsv");

static ZHEJIANG: LazyLock<RegionTree> = LazyLock::new(|| {
    RegionTree::parse(ZHEJIANG_TSV).expect("data/zhejiang.tsv is valid (checked by the tests)")
});

/// One region (one bureau): a province, a city, or a county-level division.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// GB/T 2260 code.
    pub code: RegionCode,
    /// Official Chinese name (杭州市).
    pub name_zh: String,
    /// English name (Hangzhou, Xihu District).
    pub name_en: String,
    /// Tier, as the code says.
    pub level: Level,
    /// Parent region; `None` only for the root.
    pub parent: Option<RegionCode>,
}

/// A validated region tree. Cheap to query; clone it to hand one to each consumer.
#[derive(Clone, Debug)]
pub struct RegionTree {
    /// Every region, sorted by code (which for structural codes is also a pre-order).
    regions: Vec<Region>,
    /// `children[i]`: the children of `regions[i]`, sorted by code.
    children: Vec<Vec<RegionCode>>,
    /// Index of the root in `regions`.
    root: usize,
}

impl RegionTree {
    /// The shipped default: Zhejiang (330000), from `data/zhejiang.tsv`.
    pub fn zhejiang() -> RegionTree {
        ZHEJIANG.clone()
    }

    /// Parses and validates a region file (format: the `#` header of `data/zhejiang.tsv`).
    pub fn parse(text: &str) -> Result<RegionTree, RegionError> {
        super::parse::parse(text)
    }

    /// Builds the tree from rows that [`super::parse`] has fully validated.
    pub(super) fn from_validated(mut regions: Vec<Region>) -> RegionTree {
        regions.sort_by_key(|r| r.code);
        let mut children = vec![Vec::new(); regions.len()];
        let mut root = 0;
        for (i, region) in regions.iter().enumerate() {
            match region
                .parent
                .and_then(|p| regions.binary_search_by_key(&p, |r| r.code).ok())
            {
                Some(parent) => children[parent].push(region.code),
                None => root = i,
            }
        }
        RegionTree {
            regions,
            children,
            root,
        }
    }

    fn index(&self, code: RegionCode) -> Option<usize> {
        self.regions.binary_search_by_key(&code, |r| r.code).ok()
    }

    /// The single region without a parent (330000 for the default tree).
    pub fn root(&self) -> RegionCode {
        self.regions[self.root].code
    }

    /// The region with this code, if the tree has it.
    pub fn get(&self, code: RegionCode) -> Option<&Region> {
        self.index(code).map(|i| &self.regions[i])
    }

    /// The parent of `code`; `None` for the root and for codes outside the tree.
    pub fn parent(&self, code: RegionCode) -> Option<RegionCode> {
        self.get(code).and_then(|r| r.parent)
    }

    /// The children of `code`, sorted; empty for leaves and codes outside the tree.
    pub fn children(&self, code: RegionCode) -> &[RegionCode] {
        self.index(code)
            .map_or(&[], |i| self.children[i].as_slice())
    }

    /// Parent, grandparent, … up to the root; `code` itself is not included. Empty for the
    /// root and for codes outside the tree.
    pub fn ancestors(&self, code: RegionCode) -> impl Iterator<Item = RegionCode> + '_ {
        std::iter::successors(self.parent(code), move |&c| self.parent(c))
    }

    /// True if `code` is `subtree` or descends from it. False if either is outside the tree.
    pub fn contains(&self, subtree: RegionCode, code: RegionCode) -> bool {
        if self.get(subtree).is_none() || self.get(code).is_none() {
            return false;
        }
        code == subtree || self.ancestors(code).any(|a| a == subtree)
    }

    /// `code` and all its descendants in pre-order (self first, then each child's subtree in
    /// code order). Empty for codes outside the tree.
    pub fn subtree(&self, code: RegionCode) -> Subtree<'_> {
        let stack = if self.get(code).is_some() {
            vec![code]
        } else {
            Vec::new()
        };
        Subtree { tree: self, stack }
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// Always false for a parsed tree (a tree has a root); provided for API completeness.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// Every region in code order (a pre-order walk from the root).
    pub fn iter(&self) -> impl Iterator<Item = &Region> {
        self.regions.iter()
    }

    /// How many regions of each level: `(provinces, cities, counties)`.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |l| self.regions.iter().filter(|r| r.level == l).count();
        (
            count(Level::Province),
            count(Level::City),
            count(Level::County),
        )
    }
}

impl<'a> IntoIterator for &'a RegionTree {
    type Item = &'a Region;
    type IntoIter = std::slice::Iter<'a, Region>;
    fn into_iter(self) -> Self::IntoIter {
        self.regions.iter()
    }
}

/// Pre-order iterator over a subtree, from [`RegionTree::subtree`].
#[derive(Debug, Clone)]
pub struct Subtree<'a> {
    tree: &'a RegionTree,
    /// Regions still to visit, next on top.
    stack: Vec<RegionCode>,
}

impl<'a> Iterator for Subtree<'a> {
    type Item = &'a Region;

    fn next(&mut self) -> Option<&'a Region> {
        let code = self.stack.pop()?;
        self.stack.extend(self.tree.children(code).iter().rev());
        self.tree.get(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> RegionCode {
        RegionCode::parse(s).expect("valid code")
    }

    #[test]
    fn default_tree_shape() {
        let tree = RegionTree::zhejiang();
        assert_eq!(tree.counts(), (1, 11, 90));
        assert_eq!(tree.len(), 102);
        assert!(!tree.is_empty());
        assert_eq!(tree.root(), code("330000"));
        let cities: Vec<u32> = tree
            .children(code("330000"))
            .iter()
            .map(|c| c.as_u32())
            .collect();
        assert_eq!(
            cities,
            (1..=11).map(|i| 330_000 + i * 100).collect::<Vec<_>>()
        );
        for region in &tree {
            assert_eq!(region.level, region.code.level());
            assert_eq!(region.parent, region.code.structural_parent());
            assert!(!region.name_zh.is_empty() && !region.name_en.is_empty());
        }
    }

    #[test]
    fn xihu_district() {
        let tree = RegionTree::zhejiang();
        let xihu = tree
            .get(code("330106"))
            .expect("Xihu is in the default tree");
        assert_eq!(
            (xihu.name_zh.as_str(), xihu.name_en.as_str()),
            ("西湖区", "Xihu District")
        );
        assert_eq!(xihu.level, Level::County);
        assert_eq!(tree.parent(code("330106")), Some(code("330100")));
        let up: Vec<_> = tree.ancestors(code("330106")).collect();
        assert_eq!(up, vec![code("330100"), code("330000")]);
        assert_eq!(tree.ancestors(code("330000")).count(), 0);
        assert!(tree.children(code("330106")).is_empty());
    }

    #[test]
    fn contains_both_ways() {
        let tree = RegionTree::zhejiang();
        let (prov, hz, xihu, nb) = (
            code("330000"),
            code("330100"),
            code("330106"),
            code("330200"),
        );
        assert!(tree.contains(prov, xihu) && tree.contains(hz, xihu) && tree.contains(xihu, xihu));
        assert!(!tree.contains(xihu, hz) && !tree.contains(hz, prov) && !tree.contains(nb, xihu));
        assert!(!tree.contains(prov, code("320000")) && !tree.contains(code("320000"), xihu));
        assert!(
            !tree.contains(code("320000"), code("320000")),
            "outside codes contain nothing"
        );
    }

    #[test]
    fn subtree_is_preorder_self_first() {
        let tree = RegionTree::zhejiang();
        let hz: Vec<u32> = tree
            .subtree(code("330100"))
            .map(|r| r.code.as_u32())
            .collect();
        assert_eq!(hz.first(), Some(&330_100));
        assert_eq!(hz.len(), 14, "Hangzhou and its 13 county-level divisions");
        assert!(hz[1..].iter().all(|&c| c / 100 == 3301));
        let all: Vec<_> = tree.subtree(tree.root()).map(|r| r.code).collect();
        let iter: Vec<_> = tree.iter().map(|r| r.code).collect();
        assert_eq!(all, iter, "code order is a pre-order for structural codes");
        assert_eq!(tree.subtree(code("320000")).count(), 0);
        assert_eq!(tree.subtree(code("330106")).count(), 1);
    }

    #[test]
    fn unknown_codes_are_answered_not_failed() {
        let tree = RegionTree::zhejiang();
        let other = code("320000");
        assert!(tree.get(other).is_none() && tree.parent(other).is_none());
        assert!(tree.children(other).is_empty());
        assert_eq!(tree.ancestors(other).count(), 0);
    }
}
