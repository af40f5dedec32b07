// SPDX-License-Identifier: AGPL-3.0-or-later
//! Where the SIP messages of a past call come from, for its ladder, its message list and its
//! pcap. `spycraft serve FILE...` reads them back from the captures it analysed; a capture's
//! frames are gone once seen, so a live sensor has none to give.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::capture::CaptureError;
use crate::inspect::dump::DumpedMessage;
use crate::inspect::each_message;
use crate::inspect::write::{write_picked, Inputs, WriteError};
use crate::parse_stage::SipPorts;

/// Why a call's messages could not be given.
#[derive(Debug, thiserror::Error)]
pub enum MessagesError {
    /// The captures could not be read again.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// The call's frames could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The written frames could not be read back.
    #[error("reading the call's frames back: {0}")]
    Io(#[from] std::io::Error),
}

/// A source of the messages of past calls.
pub trait CallMessages: Send + Sync + std::fmt::Debug {
    /// Every message of the calls with these Call-IDs, in capture order.
    fn messages(&self, call_ids: &HashSet<String>) -> Result<Vec<DumpedMessage>, MessagesError>;
    /// Their frames as a pcap file.
    fn pcap(&self, call_ids: &HashSet<String>) -> Result<Vec<u8>, MessagesError>;
}

/// The capture files a `serve` run analysed, read again for each call asked about.
#[derive(Debug)]
pub struct CaptureFiles {
    files: Vec<PathBuf>,
    filter: Option<String>,
    ports: SipPorts,
    collation_headers: Vec<String>,
}

impl CaptureFiles {
    /// The captures, read as the analysis read them.
    pub fn new(
        files: Vec<PathBuf>,
        filter: Option<String>,
        ports: SipPorts,
        collation_headers: Vec<String>,
    ) -> Self {
        Self {
            files,
            filter,
            ports,
            collation_headers,
        }
    }
}

impl CallMessages for CaptureFiles {
    fn messages(&self, call_ids: &HashSet<String>) -> Result<Vec<DumpedMessage>, MessagesError> {
        let mut kept = Vec::new();
        each_message(
            &self.files,
            self.filter.as_deref(),
            &self.ports,
            &self.collation_headers,
            &mut |m| {
                if call_ids.contains(m.event.call_id()) {
                    kept.push(DumpedMessage::of(m));
                }
            },
        )?;
        Ok(kept)
    }

    fn pcap(&self, call_ids: &HashSet<String>) -> Result<Vec<u8>, MessagesError> {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "spycraft-call-{}-{}.pcap",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        let inputs = Inputs {
            files: &self.files,
            filter: self.filter.as_deref(),
            ports: &self.ports,
            collation_headers: &self.collation_headers,
        };
        let written = write_picked(inputs, &mut |m| call_ids.contains(m.event.call_id()), &path);
        let bytes = written
            .map_err(MessagesError::from)
            .and_then(|_| Ok(std::fs::read(&path)?));
        let _ = std::fs::remove_file(&path);
        bytes
    }
}
