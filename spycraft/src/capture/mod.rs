// SPDX-License-Identifier: AGPL-3.0-or-later
//! Frame sources. Each yields frames borrowed from its own buffer: `(timestamp, link type,
//! bytes)`, no copy. Offline files come through libpcap; live sources arrive with the kernel
//! programs.

mod offline;

pub use offline::{CaptureError, OfflineSource};

use crate::decode::LinkType;

/// One captured frame, borrowed from the source's buffer until the next read.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Microseconds since the Unix epoch.
    pub ts_us: i64,
    pub link: LinkType,
    /// Length on the wire; more than `data.len()` when the snap length cut the frame.
    pub original_len: u32,
    pub data: &'a [u8],
}
