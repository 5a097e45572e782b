//! [`RegionIndex`]: the region tree flattened to dense indices, one subscriber bucket each, and
//! per region the precomputed list of buckets an alert there can reach.
//!
//! Matching is subtree-aware both ways: an alert for region R reaches subscribers registered at R,
//! at any ancestor of R (a city subscriber sees its counties) and at any descendant of R (a county
//! subscriber sees its city's and province's alerts). Siblings and other subtrees never match.
//! `related(R)` = R + ancestors + descendants, computed once from the [`RegionTree`], so fan-out
//! visits at most `len()` buckets (102 for Zhejiang) and never scans all subscribers.

use tiers::{RegionCode, RegionTree};

/// Dense index of a region in a [`RegionIndex`]; also its subscriber bucket.
pub(crate) type RegionIdx = u32;

/// The tree as arrays indexed by [`RegionIdx`].
#[derive(Debug, Clone)]
pub(crate) struct RegionIndex {
    /// `codes[i]`: the code of region `i`, sorted (so lookup is a binary search).
    codes: Vec<RegionCode>,
    /// `parent[i]`: the parent of region `i`, `None` for the root.
    parent: Vec<Option<RegionIdx>>,
    /// `related[i]`: `i`, its ancestors and its descendants (each once).
    related: Vec<Box<[RegionIdx]>>,
}

impl RegionIndex {
    /// Flattens `tree`. Cost O(regions × depth + Σ subtree sizes): once, at hub construction.
    pub(crate) fn new(tree: &RegionTree) -> RegionIndex {
        let mut codes: Vec<RegionCode> = tree.iter().map(|r| r.code).collect();
        codes.sort_unstable();
        codes.dedup();
        let lookup = |code: RegionCode| -> Option<RegionIdx> {
            codes
                .binary_search(&code)
                .ok()
                .and_then(|i| RegionIdx::try_from(i).ok())
        };
        let parent: Vec<Option<RegionIdx>> = codes
            .iter()
            .map(|&c| tree.parent(c).and_then(lookup))
            .collect();
        let related = codes
            .iter()
            .map(|&c| {
                let up = tree.ancestors(c);
                let down = tree.subtree(c).map(|r| r.code); // self first
                let mut list: Vec<RegionIdx> = down.chain(up).filter_map(lookup).collect();
                list.sort_unstable();
                list.dedup();
                list.into_boxed_slice()
            })
            .collect();
        RegionIndex {
            codes,
            parent,
            related,
        }
    }

    /// The index of `code`, if the tree has it.
    pub(crate) fn index(&self, code: RegionCode) -> Option<RegionIdx> {
        self.codes
            .binary_search(&code)
            .ok()
            .and_then(|i| RegionIdx::try_from(i).ok())
    }

    /// Number of regions (and of buckets).
    pub(crate) fn len(&self) -> usize {
        self.codes.len()
    }

    /// The buckets an alert for `idx` reaches: itself, its ancestors, its descendants.
    pub(crate) fn related(&self, idx: RegionIdx) -> &[RegionIdx] {
        self.related.get(idx as usize).map_or(&[], |r| &r[..])
    }

    /// True if an alert for `a` reaches a subscriber at `b` (symmetric): one is the other or
    /// an ancestor of it. Walks parents, so O(depth) (3 for a province tree).
    pub(crate) fn is_related(&self, a: RegionIdx, b: RegionIdx) -> bool {
        self.is_ancestor_or_self(a, b) || self.is_ancestor_or_self(b, a)
    }

    fn is_ancestor_or_self(&self, ancestor: RegionIdx, mut of: RegionIdx) -> bool {
        // Bounded by the number of regions in case of a malformed parent chain.
        for _ in 0..=self.codes.len() {
            if of == ancestor {
                return true;
            }
            match self.parent.get(of as usize).copied().flatten() {
                Some(p) => of = p,
                None => return false,
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(index: &RegionIndex, code: u32) -> RegionIdx {
        let code = RegionCode::from_u32(code).expect("valid code");
        index.index(code).expect("in the tree")
    }

    #[test]
    fn related_sets_of_zhejiang() {
        let index = RegionIndex::new(&RegionTree::zhejiang());
        assert_eq!(index.len(), 102);
        assert_eq!(
            index.related(idx(&index, 330_000)).len(),
            102,
            "province sees all"
        );
        assert_eq!(
            index.related(idx(&index, 330_100)).len(),
            15,
            "Hangzhou: itself, the province, 13 counties"
        );
        let xihu: Vec<RegionIdx> = index.related(idx(&index, 330_106)).to_vec();
        let mut expected = vec![
            idx(&index, 330_000),
            idx(&index, 330_100),
            idx(&index, 330_106),
        ];
        expected.sort_unstable();
        assert_eq!(xihu, expected);
        assert!(index.related(999).is_empty());
    }

    #[test]
    fn is_related_agrees_with_related_lists() {
        let index = RegionIndex::new(&RegionTree::zhejiang());
        let n = index.len() as RegionIdx;
        for a in 0..n {
            for b in 0..n {
                assert_eq!(
                    index.is_related(a, b),
                    index.related(a).contains(&b),
                    "{a} {b}"
                );
            }
        }
        assert!(!index.is_related(idx(&index, 330_106), idx(&index, 330_102)));
        assert!(!index.is_related(idx(&index, 330_100), idx(&index, 330_200)));
    }
}
