// SPDX-License-Identifier: AGPL-3.0-or-later
//! `analyze --calls`: the legs of one call (same `collation_id`, across a B2BUA or several
//! sensors) gathered into one row, legs nested. A call is written once capture time has moved
//! [`CALL_LINGER_US`] past its last leg, so the legs that end a little later still join it;
//! the rest are written at the end.

use std::collections::HashMap;
use std::io::Write;

use serde::Serialize;

use super::{Outbox, RecordSink, SinkError, Tally};
use crate::call::{CallRecord, Disposition, Timestamp};

/// How long after its last leg a call may still gain one (capture time).
pub const CALL_LINGER_US: i64 = 60_000_000;

/// Calls held at once; beyond it the quietest is written early.
const MAX_OPEN_CALLS: usize = 250_000;

/// One call: its legs and what they say together.
#[derive(Clone, Debug, Serialize)]
pub struct Call {
    /// The legs' collation id.
    pub collation_id: String,
    /// The first leg's INVITE time.
    pub started_at: Timestamp,
    /// The last leg's end.
    pub ended_at: Option<Timestamp>,
    /// Legs in the call.
    pub leg_count: usize,
    /// Sensors that saw a leg, sorted.
    pub nodes: Vec<String>,
    /// The first leg's (the one the caller sent).
    pub disposition: Disposition,
    /// The first leg's From user.
    pub from_user: Option<String>,
    /// The first leg's To user.
    pub to_user: Option<String>,
    /// The longest billable time among the legs.
    pub billable_ms: Option<u64>,
    /// In INVITE order.
    pub legs: Vec<CallRecord>,
}

impl Call {
    fn of(collation_id: String, mut legs: Vec<CallRecord>) -> Self {
        legs.sort_by_key(|l| (l.invite_at, l.node.clone()));
        let first = &legs[0];
        let mut nodes: Vec<String> = legs.iter().map(|l| l.node.clone()).collect();
        nodes.sort();
        nodes.dedup();
        Self {
            collation_id,
            started_at: first.invite_at,
            ended_at: legs.iter().filter_map(|l| l.end_at).max(),
            leg_count: legs.len(),
            nodes,
            disposition: first.disposition,
            from_user: first.from_user.clone(),
            to_user: first.to_user.clone(),
            billable_ms: legs.iter().filter_map(|l| l.billable_ms).max(),
            legs,
        }
    }
}

/// How calls are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallFormat {
    /// One JSON object per call, legs in a `legs` array.
    Jsonl,
    /// A line per call, its legs indented below it.
    Table,
}

struct OpenCall {
    legs: Vec<CallRecord>,
    /// Capture time of its latest leg event.
    last: Timestamp,
}

/// Gathers legs into calls and writes each call when it can gain no more legs.
pub struct CallSink {
    out: Outbox,
    format: CallFormat,
    open: HashMap<String, OpenCall>,
    /// Latest capture time seen on any leg.
    clock: Timestamp,
    /// When the open calls were last looked over.
    swept: Timestamp,
}

impl std::fmt::Debug for CallSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallSink")
            .field("open", &self.open.len())
            .finish()
    }
}

impl CallSink {
    /// A sink writing calls to `out` in `format`.
    pub fn new(out: Box<dyn Write + Send>, format: CallFormat) -> Self {
        Self {
            out: Outbox::new(out),
            format,
            open: HashMap::new(),
            clock: Timestamp::MIN,
            swept: Timestamp::MIN,
        }
    }

    fn emit(&mut self, collation_id: String, legs: Vec<CallRecord>) -> Result<(), SinkError> {
        let call = Call::of(collation_id, legs);
        let format = self.format;
        let mut failed = None;
        self.out.push(call.leg_count as u64, |buf| {
            if let Err(e) = write_call(&call, format, buf) {
                failed = Some(e);
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        if self.out.pending_bytes() >= 64 * 1024 {
            self.out.flush()?;
        }
        Ok(())
    }

    /// Writes the calls quiet for longer than the linger, oldest first.
    fn sweep(&mut self, all: bool) -> Result<(), SinkError> {
        let cutoff = self.clock.plus_micros(-CALL_LINGER_US);
        let mut due: Vec<(Timestamp, String)> = self
            .open
            .iter()
            .filter(|(_, c)| all || c.last < cutoff)
            .map(|(id, c)| (c.last, id.clone()))
            .collect();
        due.sort();
        for (_, id) in due {
            if let Some(call) = self.open.remove(&id) {
                self.emit(id, call.legs)?;
            }
        }
        Ok(())
    }
}

/// Appends one call in `format` to `buf`.
fn write_call(call: &Call, format: CallFormat, buf: &mut Vec<u8>) -> Result<(), SinkError> {
    match format {
        CallFormat::Jsonl => {
            serde_json::to_writer(&mut *buf, call)?;
            buf.push(b'\n');
        }
        CallFormat::Table => {
            let billable = call
                .billable_ms
                .map_or("-".into(), |ms| format!("{}.{:03}s", ms / 1000, ms % 1000));
            writeln!(
                buf,
                "{}  {}  {} -> {}  {}  billable {}  {} leg(s) on {}",
                call.started_at.to_clock(),
                call.collation_id,
                call.from_user.as_deref().unwrap_or("-"),
                call.to_user.as_deref().unwrap_or("-"),
                call.disposition,
                billable,
                call.leg_count,
                call.nodes.join(", ")
            )?;
            for l in &call.legs {
                writeln!(
                    buf,
                    "    {}  {}  {}:{} -> {}:{}  {}  {}",
                    l.invite_at.to_clock(),
                    l.node,
                    l.caller_ip,
                    l.caller_port,
                    l.callee_ip,
                    l.callee_port,
                    l.final_status.map_or("-".into(), |s| s.to_string()),
                    l.call_id
                )?;
            }
        }
    }
    Ok(())
}

impl RecordSink for CallSink {
    fn write(&mut self, record: &CallRecord) -> Result<(), SinkError> {
        let last = record.end_at.unwrap_or(record.invite_at);
        self.clock = self.clock.max(last);
        let call = self
            .open
            .entry(record.collation_id.clone())
            .or_insert_with(|| OpenCall {
                legs: Vec::new(),
                last,
            });
        call.legs.push(record.clone());
        call.last = call.last.max(last);
        // Look the open calls over once per second of capture time, or when they crowd.
        if self.clock.micros_since(self.swept) >= 1_000_000 || self.open.len() > MAX_OPEN_CALLS {
            self.swept = self.clock;
            self.sweep(self.open.len() > MAX_OPEN_CALLS)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(self.out.flush()?)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.sweep(true)?;
        Ok(self.out.finish()?)
    }

    /// Legs of calls still open (waiting for more legs) are held.
    fn tally(&self) -> Option<Tally> {
        let open: u64 = self.open.values().map(|c| c.legs.len() as u64).sum();
        let mut t = self.out.tally();
        t.records += open;
        t.held += open;
        Some(t)
    }
}
