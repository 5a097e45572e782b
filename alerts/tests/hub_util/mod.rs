//! Helpers shared by the hub scenario tests.
#![allow(dead_code)]

use alerts::hub::{AlertKind, MsgType, PublishedAlert, Severity};
use bytes::Bytes;
use tiers::RegionCode;

/// A region code from its number.
pub fn code(c: u32) -> RegionCode {
    RegionCode::from_u32(c).expect("valid code")
}

/// A plain `Alert` message for `regions`, with a frame naming its sequence number.
pub fn alert(seq: u64, regions: &[u32], kind: AlertKind, severity: Severity) -> PublishedAlert {
    PublishedAlert {
        seq,
        id: format!("alert-{seq}"),
        kind,
        severity,
        regions: regions.iter().map(|&c| code(c)).collect(),
        msg_type: MsgType::Alert,
        references: Vec::new(),
        inherited: Vec::new(),
        expires: None,
        frame: Bytes::from(format!("frame {seq}")),
    }
}
