//! [`CapError`]: everything that can be wrong with a CAP document, XML or JSON, each naming
//! where: a [`Position`] for syntax-level problems, an element path such as
//! `alert/info[0]/severity` for schema and rule problems.
//!
//! Paths use CAP element names (also the JSON field names). Repeatable elements always carry
//! their zero-based index (`info[0]`, `area[1]`, `geocode[0]`); single ones never do. For an
//! unknown element the path is the parent's and `name` the offender.

use std::fmt;

use super::datetime::DateTimeError;
use super::enums::UnknownValue;

/// Where in the input a syntax-level error was found: byte offset and 1-based line and column
/// (the column counts characters, not bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Byte offset from the start of the input.
    pub offset: u64,
    /// 1-based line.
    pub line: u32,
    /// 1-based column in characters.
    pub column: u32,
}

impl Position {
    /// The position of byte `offset` in `input` (clamped to its length).
    pub fn at(input: &[u8], offset: u64) -> Position {
        let end = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(input.len());
        let before = &input[..end];
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        // Count characters, not bytes: skip UTF-8 continuation bytes.
        let column = before[line_start..]
            .iter()
            .filter(|b| (**b & 0xC0) != 0x80)
            .count()
            + 1;
        Position {
            offset: end as u64,
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {} (byte {})",
            self.line, self.column, self.offset
        )
    }
}

/// A CAP document that cannot be accepted, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CapError {
    /// The input is larger than the size limit; none of it was parsed.
    #[error("document is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Size of the input in bytes.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The XML has a document type declaration; DTDs are refused outright (no external entities,
    /// no entity expansion).
    #[error("document type declaration at {at}: DTDs are forbidden in CAP input")]
    DtdForbidden {
        /// Where the `<!DOCTYPE` starts.
        at: Position,
    },
    /// An entity reference other than XML's five predefined ones (`lt gt amp apos quot`) and
    /// character references; with no DTD, nothing can declare one.
    #[error("undeclared entity reference `&{name};` at {at}")]
    UndeclaredEntity {
        /// The entity name between `&` and `;`.
        name: String,
        /// Where the reference is.
        at: Position,
    },
    /// Not well-formed XML (or not JSON, or not UTF-8).
    #[error("malformed {format} at {at}: {message}")]
    Malformed {
        /// `XML` or `JSON`.
        format: &'static str,
        /// Where the reader stopped.
        at: Position,
        /// What the reader expected.
        message: String,
    },
    /// The root is not `alert` in the CAP 1.2 namespace `urn:oasis:names:tc:emergency:cap:1.2`.
    #[error("not a CAP 1.2 alert: root is {found}")]
    NotCap {
        /// The root element and namespace found.
        found: String,
    },
    /// An element the CAP 1.2 schema does not allow inside `path`.
    #[error("{path}: unknown element `{name}`")]
    UnknownElement {
        /// Path of the parent element.
        path: String,
        /// The unexpected element's name (`{namespace}name` when outside CAP's namespace).
        name: String,
    },
    /// An element placed after one that the schema sequence puts later.
    #[error("{path}: out of schema order, must come before `{after}`")]
    OutOfOrder {
        /// Path of the misplaced element.
        path: String,
        /// The earlier sibling that the schema orders after it.
        after: String,
    },
    /// An element that may occur at most once occurs again.
    #[error("{path}: may occur at most once")]
    Repeated {
        /// Path of the second occurrence.
        path: String,
    },
    /// A required element is absent, or one that another value makes required.
    #[error("{path}: missing ({reason})")]
    Missing {
        /// Path the element should have.
        path: String,
        /// Why it is required.
        reason: &'static str,
    },
    /// A value outside an enumeration; `allowed` lists the permitted values.
    #[error("{path}: `{value}` is not one of: {}", allowed.join(", "))]
    BadEnum {
        /// Path of the element.
        path: String,
        /// The value found (clipped).
        value: String,
        /// The values the element allows.
        allowed: &'static [&'static str],
    },
    /// A dateTime not of the form `YYYY-MM-DDThh:mm:ss±hh:mm`, or an impossible date.
    #[error("{path}: bad dateTime: {error}")]
    BadDateTime {
        /// Path of the element.
        path: String,
        /// What is wrong with the value.
        error: DateTimeError,
    },
    /// Any other broken rule: a value's format, content of the wrong kind, or a relation
    /// between values (`expires` not after `sent`).
    #[error("{path}: {reason}")]
    Invalid {
        /// Path of the offending element.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl CapError {
    /// The element path the error names, if it names one (syntax errors name a position).
    pub fn path(&self) -> Option<&str> {
        match self {
            CapError::UnknownElement { path, .. }
            | CapError::OutOfOrder { path, .. }
            | CapError::Repeated { path }
            | CapError::Missing { path, .. }
            | CapError::BadEnum { path, .. }
            | CapError::BadDateTime { path, .. }
            | CapError::Invalid { path, .. } => Some(path),
            _ => None,
        }
    }

    /// A stable machine-readable kind, e.g. for an HTTP error body.
    pub fn kind(&self) -> &'static str {
        match self {
            CapError::TooLarge { .. } => "too_large",
            CapError::DtdForbidden { .. } => "dtd_forbidden",
            CapError::UndeclaredEntity { .. } => "undeclared_entity",
            CapError::Malformed { .. } => "malformed",
            CapError::NotCap { .. } => "not_cap",
            CapError::UnknownElement { .. } => "unknown_element",
            CapError::OutOfOrder { .. } => "out_of_order",
            CapError::Repeated { .. } => "repeated",
            CapError::Missing { .. } => "missing",
            CapError::BadEnum { .. } => "bad_enum",
            CapError::BadDateTime { .. } => "bad_datetime",
            CapError::Invalid { .. } => "invalid",
        }
    }

    pub(crate) fn invalid(path: impl Into<String>, reason: impl Into<String>) -> CapError {
        CapError::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn bad_enum(path: impl Into<String>, e: UnknownValue) -> CapError {
        CapError::BadEnum {
            path: path.into(),
            value: e.value,
            allowed: e.allowed,
        }
    }

    pub(crate) fn bad_datetime(path: impl Into<String>, error: DateTimeError) -> CapError {
        CapError::BadDateTime {
            path: path.into(),
            error,
        }
    }

    pub(crate) fn missing(path: impl Into<String>, reason: &'static str) -> CapError {
        CapError::Missing {
            path: path.into(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let input = "ab\n食品x".as_bytes();
        let p = Position::at(input, 6);
        assert_eq!((p.line, p.column, p.offset), (2, 2, 6));
        assert_eq!(Position::at(input, 999).offset, input.len() as u64);
        assert_eq!(
            Position::at(b"", 0).to_string(),
            "line 1, column 1 (byte 0)"
        );
    }
}
