//! Regions: GB/T 2260 codes, levels, and the province → city → county tree.
//!
//! - `code.rs`: [`RegionCode`] (a checked six-digit code) and [`Level`], both structural: the
//!   digits alone say a code's level and its parent's code.
//! - `tree.rs`: [`RegionTree`], the validated set of regions a deployment serves, with parent,
//!   child, ancestor and subtree queries.
//! - `parse.rs`: the region file format (documented at the top of `data/zhejiang.tsv`) and its
//!   validation, every error naming its line.

mod code;
mod parse;
mod tree;

pub use code::{Level, RegionCode};
pub use tree::{Region, RegionTree, Subtree};

/// Why a region code or a region file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    /// A string is not a GB/T 2260 code (six ASCII digits, non-zero province part, and a
    /// county code never has a zero city part).
    #[error("invalid region code {input:?}: {reason}")]
    InvalidCode {
        /// The rejected input, cut to 32 characters.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A line of a region file is not four tab-separated fields with non-empty names.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// A code or parent field of a region file holds an invalid code.
    #[error("line {line}: invalid region code {input:?}: {reason}")]
    MalformedCode {
        /// 1-based line number.
        line: usize,
        /// The rejected field, cut to 32 characters.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The same code is defined twice.
    #[error("line {line}: duplicate region code {code} (first defined on line {first})")]
    Duplicate {
        /// 1-based line number of the second definition.
        line: usize,
        /// The duplicated code.
        code: RegionCode,
        /// 1-based line number of the first definition.
        first: usize,
    },
    /// A region names a parent that the file does not define.
    #[error("line {line}: parent {parent} of {code} is not defined in the file")]
    UnknownParent {
        /// 1-based line number of the child.
        line: usize,
        /// The child.
        code: RegionCode,
        /// The missing parent.
        parent: RegionCode,
    },
    /// A region's parent is not exactly one level above it (e.g. a county under a county).
    #[error("line {line}: {code} is a {level} and cannot sit under {parent}, a {parent_level}")]
    LevelMismatch {
        /// 1-based line number of the child.
        line: usize,
        /// The child.
        code: RegionCode,
        /// The child's level.
        level: Level,
        /// The named parent.
        parent: RegionCode,
        /// The parent's level.
        parent_level: Level,
    },
    /// A region's parent has the right level but is not the region its code names
    /// (330106 must sit under 330100, not 330200).
    #[error("line {line}: {code} cannot sit under {parent}: its code puts it under {expected}")]
    ParentMismatch {
        /// 1-based line number of the child.
        line: usize,
        /// The child.
        code: RegionCode,
        /// The named parent.
        parent: RegionCode,
        /// The parent the child's code implies.
        expected: RegionCode,
    },
    /// A second region without a parent: a tree has exactly one root.
    #[error("line {line}: {code} has no parent, but {root} (line {root_line}) is already the root")]
    MultipleRoots {
        /// 1-based line number of the second root.
        line: usize,
        /// The second root.
        code: RegionCode,
        /// The first root.
        root: RegionCode,
        /// 1-based line number of the first root.
        root_line: usize,
    },
    /// The file defines no region at all.
    #[error("line {lines}: end of file, but no region was defined (a tree needs a root)")]
    Empty {
        /// Number of lines read (comments and blank lines only).
        lines: usize,
    },
}

/// Cuts attacker- or user-supplied text to a length that is safe to echo in an error.
pub(crate) fn clip(input: &str) -> String {
    const MAX: usize = 32;
    match input.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &input[..end]),
        None => input.to_owned(),
    }
}
