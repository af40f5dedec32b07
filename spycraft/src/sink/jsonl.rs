// SPDX-License-Identifier: AGPL-3.0-or-later
//! JSON lines: one record per line, fields named as in the CDR contract.
//!
//! The line is written by hand from [`visit`]: field names are literals and most values need
//! no escaping, which makes it several times cheaper than the derived serialiser, whose output
//! it matches byte for byte (tested).

use std::io::Write;
use std::net::IpAddr;

use super::columns::{visit, Columns, Value, JSON_KEYS};
use super::{Outbox, RecordSink, SinkError, Tally};
use crate::call::{CallRecord, RFC3339_LEN};
use crate::decimal::push_u64;
use crate::simd::needs_escape;

/// Writes each record as one line of JSON.
pub struct JsonlSink {
    /// Records are formatted straight into it, and handed to the file whole once past
    /// [`FLUSH_AT`] (or when flushed), so no line is copied twice.
    out: Outbox,
}

/// Bytes gathered before a write.
const FLUSH_AT: usize = 64 * 1024;

impl std::fmt::Debug for JsonlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonlSink")
    }
}

impl JsonlSink {
    /// A sink writing to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: Outbox::new(out),
        }
    }
}

impl RecordSink for JsonlSink {
    fn write(&mut self, record: &CallRecord) -> Result<(), SinkError> {
        self.out.push(1, |line| {
            write_json(record, line);
            line.push(b'\n');
        });
        if self.out.pending_bytes() >= FLUSH_AT {
            self.out.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(self.out.flush()?)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(self.out.finish()?)
    }

    fn tally(&self) -> Option<Tally> {
        Some(self.out.tally())
    }
}

/// Appends the record as a JSON object, exactly as `serde_json::to_writer` writes it.
pub fn write_json(record: &CallRecord, out: &mut Vec<u8>) {
    out.push(b'{');
    visit(record, &mut JsonFields(out));
    out.push(b'}');
}

/// Writes each value after its key, which carries the comma before it.
struct JsonFields<'o>(&'o mut Vec<u8>);

impl<'r> Columns<'r> for JsonFields<'_> {
    /// Inlined into each column's call, where the kind of the value is known, so the
    /// choice between kinds is made while compiling.
    #[inline(always)]
    fn column(&mut self, column: usize, value: Value<'r>) {
        let key = JSON_KEYS[column].as_bytes();
        let key = if column == 0 { &key[1..] } else { key };
        self.0.extend_from_slice(key);
        write_value(value, self.0);
    }
}

#[inline(always)]
fn write_value(value: Value<'_>, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Text(s) => write_str(s, out),
        Value::Number(n) => push_u64(n, out),
        Value::Ip(IpAddr::V4(ip)) => {
            out.push(b'"');
            for (n, octet) in ip.octets().into_iter().enumerate() {
                if n > 0 {
                    out.push(b'.');
                }
                push_u64(octet.into(), out);
            }
            out.push(b'"');
        }
        Value::Ip(ip) => {
            // Infallible: writing into a Vec.
            let _ = write!(out, "\"{ip}\"");
        }
        Value::Time(t) => write_plain_bytes(t.rfc3339_bytes(&mut [0; RFC3339_LEN]), out),
        Value::Id(id) => write_plain(
            id.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
            out,
        ),
        Value::Issues(issues) => {
            out.push(b'[');
            for (n, issue) in issues.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_plain(issue.as_str(), out);
            }
            out.push(b']');
        }
    }
}

/// A JSON string. Text needing no escape (no quote, backslash or control character, the
/// norm in SIP) is copied; anything else goes through serde_json's escaper.
fn write_str(s: &str, out: &mut Vec<u8>) {
    if needs_escape(s.as_bytes()) {
        // Infallible: writing a string into a Vec.
        let _ = serde_json::to_writer(&mut *out, s);
        return;
    }
    write_plain(s, out);
}

/// A string known to need no escape (the program's own text: times, ids, names).
fn write_plain(s: &str, out: &mut Vec<u8>) {
    write_plain_bytes(s.as_bytes(), out);
}

/// [`write_plain`] for ASCII the program wrote itself.
fn write_plain_bytes(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(s);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{CaptureIssue, Direction, Party, Timestamp};
    use crate::pipeline::{analyze_files, PipelineConfig};

    /// Keeps records.
    #[derive(Default)]
    struct Keep(Vec<CallRecord>);

    impl RecordSink for Keep {
        fn write(&mut self, record: &CallRecord) -> Result<(), SinkError> {
            self.0.push(record.clone());
            Ok(())
        }

        fn finish(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
    }

    fn assert_same_as_serde(record: &CallRecord) {
        let mut ours = Vec::new();
        write_json(record, &mut ours);
        let theirs = serde_json::to_vec(record).expect("serialise");
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }

    #[test]
    fn writes_every_bundled_record_as_serde_json_does() {
        let files = crate::bundled::bundled_captures();
        let mut sink = Keep::default();
        for file in &files {
            let (_, result) = analyze_files(
                std::slice::from_ref(file),
                None,
                &PipelineConfig::default(),
                &mut sink,
                &mut |_| {},
            );
            result.expect("analysed");
        }
        assert!(sink.0.len() >= 25, "{} records", sink.0.len());
        for record in &sink.0 {
            assert_same_as_serde(record);
        }
    }

    #[test]
    fn escapes_and_fills_every_field_as_serde_json_does() {
        let mut sink = Keep::default();
        let pcap = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../pcaps/answered-caller-bye/capture.pcap");
        let (_, result) = analyze_files(
            &[pcap],
            None,
            &PipelineConfig::default(),
            &mut sink,
            &mut |_| {},
        );
        result.expect("analysed");
        let mut r = sink.0.remove(0);
        r.node = "quote \" backslash \\ tab \t nul \u{0} bell \u{7} del \u{7f}".into();
        r.from_user = Some("Zoë ☎ 🦀".into());
        r.final_reason = Some("line\r\nbreak".into());
        r.callee_ip = "2001:db8::5".parse().expect("ip");
        r.vlan = Some(4094);
        r.transfer_at = Some(Timestamp(-1));
        r.transferred_by = Some(Party::Callee);
        r.direction = Direction::Inbound;
        r.forked_last_status = Some(u16::MAX);
        r.duration_ms = Some(u64::MAX);
        r.capture_issues = CaptureIssue::ALL.to_vec();
        assert_same_as_serde(&r);
        r.capture_issues.clear();
        r.to_tag = None;
        assert_same_as_serde(&r);
    }
}
