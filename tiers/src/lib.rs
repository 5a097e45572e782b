//! `tiers`: who may do what, where, in a province → city → county hierarchy.
//!
//! Regions are GB/T 2260 six-digit codes arranged in a tree (one province, its cities, their
//! county-level divisions; the default is Zhejiang, shipped as data). A [`Principal`] is a
//! subject with a [`Role`] at a region; tokens carry principals as signed JWTs; [`authorize`]
//! decides whether a principal may perform an [`Action`] about a target region.
//!
//! # Layout
//! - [`region`]: [`RegionCode`], [`Level`], [`RegionTree`] and the region file parser.
//!   `data/zhejiang.tsv` is the default tree; `tools/gen-regions.py` regenerates it.
//! - [`role`]: [`Role`] and its wire names.
//! - [`principal`]: [`Principal`], validated against a tree.
//! - [`jwt`]: [`SigningKey`], [`TokenIssuer`], [`TokenVerifier`], [`TokenError`].
//! - [`authz`]: [`Action`], [`authorize`], [`Denied`]; the rule table is in its docs.
//!
//! # Architecture invariants
//! - Pure: no file or network I/O, no clock reads, no RNG. Time comes in as unix seconds and
//!   randomness as byte arrays; the binary owns both.
//! - Imports no other hubcast crate; every other crate may import this one.
//! - No input makes it panic: tokens, region files and codes are untrusted text.

pub mod authz;
pub mod jwt;
pub mod principal;
pub mod region;
pub mod role;

pub use authz::{Action, Denied, authorize};
pub use jwt::{Algorithm, Claims, SigningKey, TokenError, TokenIssuer, TokenVerifier};
pub use principal::{Principal, PrincipalError, is_room_name};
pub use region::{Level, Region, RegionCode, RegionError, RegionTree};
pub use role::{Role, UnknownRole};
