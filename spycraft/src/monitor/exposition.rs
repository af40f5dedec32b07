// SPDX-License-Identifier: AGPL-3.0-or-later
//! The Prometheus text exposition of a [`Monitor`], built when scraped from what the run last
//! published, the call figures and the captures' counters.
//!
//! Labels carry only bounded sets (interfaces, modes, methods, classes, kinds, dispositions,
//! outputs, named peer groups, configured HEP collectors): never a number, a user or an
//! address seen in traffic.

use std::fmt::Error;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::calls::{minute_of, CallFigures, GroupFigures, Histogram};
use super::{lock, Monitor};
use crate::alert::AlertReport;
use crate::call::Disposition;
use crate::capture::CaptureFigures;
use crate::decode::Skip;
use crate::hep::HepReport;
use crate::packet::Timestamp;
use crate::pipeline::{Summary, RESPONSE_CLASSES};
use crate::sink::OutputReport;
use crate::sip::{Method, ParseError};

/// The `Content-Type` of [`Monitor::exposition`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The ratio windows: label and minutes.
const WINDOWS: [(&str, usize); 2] = [("5m", 5), ("1h", 60)];

type Labels = Vec<(&'static str, String)>;

/// The label set of a metric without labels.
const NO_LABELS: Labels = Vec::new();

impl Monitor {
    /// The metrics, in the Prometheus text format (version 0.0.4).
    pub fn exposition(self: &Arc<Self>) -> String {
        let mut registry = Registry::with_prefix("spycraft");
        registry.register_collector(Box::new(Scrape(self.clone())));
        let mut text = String::with_capacity(16 << 10);
        // Writing to a String cannot fail, and every family below encodes.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
        text
    }
}

/// One scrape of a monitor.
#[derive(Debug)]
struct Scrape(Arc<Monitor>);

/// What a scrape reads, copied out of the locks first.
struct Seen {
    summary: Summary,
    live_legs: u64,
    outputs: Vec<OutputReport>,
    calls: CallFigures,
    groups: Vec<String>,
    captures: Vec<(String, &'static str, CaptureFigures)>,
    hep: Vec<HepReport>,
    alerts: Option<AlertReport>,
    /// The minute the ratio windows end at.
    now_minute: Option<i64>,
}

impl Scrape {
    fn read(&self) -> Seen {
        let m = &self.0;
        let (summary, live_legs, outputs) = {
            let run = lock(&m.run);
            (run.summary.clone(), run.live_legs, run.outputs.clone())
        };
        let (calls, groups) = {
            let c = lock(&m.calls);
            (
                c.figures.clone(),
                c.peers.names().map(str::to_owned).collect(),
            )
        };
        let captures = lock(&m.captures)
            .iter()
            .map(|c| (c.interface.clone(), c.counts.mode(), c.counts.figures()))
            .collect();
        let hep = lock(&m.hep).iter().flat_map(|h| h.reports()).collect();
        let alerts = m.alerts().map(|a| a.report());
        let now = if m.live {
            Some(Timestamp::from_parts(
                unix_seconds(std::time::SystemTime::now()),
                0,
            ))
        } else {
            calls.latest
        };
        Seen {
            summary,
            live_legs,
            outputs,
            calls,
            groups,
            captures,
            hep,
            alerts,
            now_minute: now.map(minute_of),
        }
    }
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), Error> {
        let seen = self.read();
        let version = [("version", env!("CARGO_PKG_VERSION").to_owned())];
        gauge(
            &mut e,
            "build_info",
            "The running spycraft's version (value 1).",
            None,
            [(version.to_vec(), 1.0)],
        )?;
        gauge(
            &mut e,
            "start_time",
            "When the process started, seconds since the epoch.",
            Some(&Unit::Seconds),
            [(NO_LABELS, unix_seconds(self.0.started) as f64)],
        )?;
        captures(&mut e, &seen.captures)?;
        pipeline(&mut e, &seen.summary, seen.live_legs)?;
        calls(&mut e, &seen)?;
        outputs(&mut e, &seen.outputs)?;
        hep(&mut e, &seen.hep)?;
        match &seen.alerts {
            Some(report) => alerts(&mut e, report),
            None => Ok(()),
        }
    }
}

fn captures(
    e: &mut DescriptorEncoder<'_>,
    captures: &[(String, &'static str, CaptureFigures)],
) -> Result<(), Error> {
    let labels = |interface: &str, mode: &str| -> Labels {
        vec![
            ("interface", interface.to_owned()),
            ("mode", mode.to_owned()),
        ]
    };
    let each = |pick: &dyn Fn(&CaptureFigures) -> Option<u64>| -> Vec<(Labels, u64)> {
        captures
            .iter()
            .filter_map(|(i, m, f)| Some((labels(i, m), pick(f)?)))
            .collect()
    };
    counter(
        e,
        "capture_seen_frames",
        "Frames the kernel program looked at (xdp and socket modes).",
        None,
        each(&|f| Some(f.seen?.0)),
    )?;
    counter(
        e,
        "capture_seen",
        "Bytes of the frames the kernel program looked at.",
        Some(&Unit::Bytes),
        each(&|f| Some(f.seen?.1)),
    )?;
    counter(
        e,
        "capture_selected_frames",
        "Frames selected by the kernel program or libpcap's filter.",
        None,
        each(&|f| Some(f.selected.0)),
    )?;
    counter(
        e,
        "capture_selected",
        "Bytes of the frames the kernel program selected.",
        Some(&Unit::Bytes),
        each(&|f| f.selected.1),
    )?;
    counter(
        e,
        "capture_read_frames",
        "Frames read by spycraft.",
        None,
        each(&|f| Some(f.read)),
    )?;
    let lost = captures.iter().flat_map(|(i, m, f)| {
        f.lost.iter().map(move |(reason, n)| {
            let mut l = labels(i, m);
            l.push(("reason", (*reason).to_owned()));
            (l, *n)
        })
    });
    counter(e, "capture_lost_frames", "Selected frames lost: the kernel ring or libpcap's buffer was full (the sensor fell behind), or the interface dropped them.", None, lost)
}

fn pipeline(e: &mut DescriptorEncoder<'_>, s: &Summary, live_legs: u64) -> Result<(), Error> {
    let p = &s.parse;
    let d = &p.decode;
    counter(
        e,
        "decoded_frames",
        "Frames decoded.",
        None,
        [(NO_LABELS, d.frames)],
    )?;
    counter(
        e,
        "decoded",
        "Bytes of the frames decoded.",
        Some(&Unit::Bytes),
        [(NO_LABELS, d.bytes)],
    )?;
    let named = |label: &'static str,
                 names: &mut dyn Iterator<Item = &'static str>,
                 counts: &[u64]|
     -> Vec<(Labels, u64)> {
        names
            .zip(counts)
            .map(|(name, n)| (vec![(label, name.to_owned())], *n))
            .collect()
    };
    counter(
        e,
        "skipped_frames",
        "Frames skipped, by reason.",
        None,
        named(
            "reason",
            &mut Skip::ALL.iter().map(|k| k.name()),
            &d.skipped,
        ),
    )?;
    counter(
        e,
        "sip_requests",
        "SIP requests parsed, by method (retransmissions included).",
        None,
        named(
            "method",
            &mut Method::ALL.iter().map(|m| m.as_str()),
            &p.requests,
        ),
    )?;
    counter(
        e,
        "sip_responses",
        "SIP responses parsed, by class.",
        None,
        named("class", &mut RESPONSE_CLASSES.into_iter(), &p.responses),
    )?;
    counter(
        e,
        "sip_parse_errors",
        "Messages that did not parse, by kind.",
        None,
        named(
            "kind",
            &mut ParseError::ALL.iter().map(|k| k.name()),
            &p.parse_errors,
        ),
    )?;
    let limits = [
        ("snap_length", d.snapped_frames),
        ("tcp_gap", d.tcp.gaps),
        ("tcp_flow_evicted", d.tcp.evicted_flows),
        ("fragment_capped", d.fragments.capped),
        ("fragment_timeout", d.fragments.timeouts),
        ("oversize_message", p.oversize_messages),
        ("live_call_cap", s.tracker.evicted),
    ];
    counter(e, "limit_hits", "Times a bound was hit: frames cut by the snap length, TCP holes skipped, flows and calls evicted at their caps, fragments dropped, messages over the framing bound.", None, limits.map(|(limit, n)| (vec![("limit", limit.to_owned())], n)))?;
    counter(
        e,
        "duplicate_frames",
        "The same datagram seen twice within 20 ms (a mirror copying it from two ports, two HEP agents delivering it), dropped.",
        None,
        [(NO_LABELS, d.duplicates)],
    )?;
    let hep = [
        ("sip", d.hep.sip),
        ("other", d.hep.other),
        ("malformed", d.hep.malformed),
    ];
    counter(e, "hep_decoded_packets", "HEP packets in captured or received traffic, by outcome: SIP taken with the agent's addresses and times, other payload types skipped, malformed dropped.", None, hep.map(|(outcome, n)| (vec![("outcome", outcome.to_owned())], n)))?;
    counter(
        e,
        "tcp_capped",
        "TCP bytes dropped by a per-flow or total bound.",
        Some(&Unit::Bytes),
        [(NO_LABELS, d.tcp.capped_bytes)],
    )?;
    gauge(
        e,
        "live_calls",
        "Call legs open now.",
        None,
        [(NO_LABELS, live_legs as f64)],
    )
}

fn calls(e: &mut DescriptorEncoder<'_>, seen: &Seen) -> Result<(), Error> {
    let c = &seen.calls;
    let by_disposition = |g: &GroupFigures, group: Option<&str>| -> Vec<(Labels, u64)> {
        Disposition::ALL
            .iter()
            .zip(g.dispositions)
            .map(|(d, n)| {
                let mut l: Labels = group
                    .map(|g| vec![("peer_group", g.to_owned())])
                    .unwrap_or_default();
                l.push(("disposition", d.as_str().to_owned()));
                (l, n)
            })
            .collect()
    };
    counter(
        e,
        "calls",
        "Call records written, by disposition.",
        None,
        by_disposition(&c.all, None),
    )?;
    let per_group: Vec<(Labels, u64)> = seen
        .groups
        .iter()
        .zip(&c.groups)
        .flat_map(|(name, g)| by_disposition(g, Some(name)))
        .collect();
    counter(
        e,
        "peer_calls",
        "Call records written, by named peer group and disposition.",
        None,
        per_group,
    )?;
    histogram(
        e,
        "call_pdd",
        "Post-dial delay: INVITE to the first 18x or final response (RFC 6076 SRD).",
        &c.pdd,
    )?;
    histogram(
        e,
        "call_duration",
        "Billable time of answered calls.",
        &c.duration,
    )?;
    let Some(now) = seen.now_minute else {
        return Ok(());
    };
    type Ratio = fn(&crate::stats::Attempts) -> Option<f64>;
    let ratios: [(&str, &str, Ratio); 3] = [
        (
            "asr",
            "Answer-seizure ratio (E.411) of the calls that ended in the window.",
            crate::stats::Attempts::asr,
        ),
        (
            "ner",
            "Network effectiveness ratio (E.425) of the calls that ended in the window.",
            crate::stats::Attempts::ner,
        ),
        (
            "ser",
            "Session establishment ratio (RFC 6076) of the calls that ended in the window.",
            crate::stats::Attempts::ser,
        ),
    ];
    // Prometheus names ratios `_ratio`; the library's own unit would say `_ratios`.
    let ratio_unit = Unit::Other("ratio".into());
    for (name, help, ratio) in ratios {
        let samples = |g: &GroupFigures, group: Option<&str>| -> Vec<(Labels, f64)> {
            WINDOWS
                .iter()
                .filter_map(|(label, minutes)| {
                    let value = ratio(&g.window.sum(now, *minutes))?;
                    let mut l: Labels = group
                        .map(|g| vec![("peer_group", g.to_owned())])
                        .unwrap_or_default();
                    l.push(("window", (*label).to_owned()));
                    Some((l, value))
                })
                .collect()
        };
        gauge(e, name, help, Some(&ratio_unit), samples(&c.all, None))?;
        let groups: Vec<(Labels, f64)> = seen
            .groups
            .iter()
            .zip(&c.groups)
            .flat_map(|(n, g)| samples(g, Some(n)))
            .collect();
        gauge(e, &format!("peer_{name}"), help, Some(&ratio_unit), groups)?;
    }
    Ok(())
}

fn outputs(e: &mut DescriptorEncoder<'_>, outputs: &[OutputReport]) -> Result<(), Error> {
    let each = |pick: &dyn Fn(&OutputReport) -> u64| -> Vec<(Labels, u64)> {
        outputs
            .iter()
            .map(|o| (vec![("output", o.output.clone())], pick(o)))
            .collect()
    };
    let eachf = |pick: &dyn Fn(&OutputReport) -> f64| -> Vec<(Labels, f64)> {
        outputs
            .iter()
            .map(|o| (vec![("output", o.output.clone())], pick(o)))
            .collect()
    };
    counter(
        e,
        "output_records",
        "Records handed to each output.",
        None,
        each(&|o| o.tally.records),
    )?;
    counter(
        e,
        "output_delivered_records",
        "Records each output has written (committed, for a database).",
        None,
        each(&|o| o.tally.delivered),
    )?;
    counter(
        e,
        "output_lost_records",
        "Records an output gave up on.",
        None,
        each(&|o| o.tally.lost),
    )?;
    counter(
        e,
        "output_write_errors",
        "Writes to each output that failed.",
        None,
        each(&|o| o.write_errors),
    )?;
    gauge(
        e,
        "output_queue_records",
        "Records waiting for each output: held in memory after a failed write, or in its spool.",
        None,
        eachf(&|o| (o.tally.held + o.delivery.as_ref().map_or(0, |d| d.backlog_records)) as f64),
    )?;
    gauge(
        e,
        "output_spool",
        "Bytes waiting in each output's spool.",
        Some(&Unit::Bytes),
        eachf(&|o| o.delivery.as_ref().map_or(0, |d| d.backlog_bytes) as f64),
    )?;
    gauge(
        e,
        "output_lag",
        "While records wait: seconds since the output last delivered.",
        Some(&Unit::Seconds),
        eachf(&|o| o.delivery.as_ref().map_or(0.0, |d| d.lag_seconds)),
    )?;
    let requests = outputs.iter().flat_map(|o| {
        let r = o.delivery.as_ref().and_then(|d| d.requests).into_iter();
        r.flat_map(move |r| {
            [
                ("sent", r.sent),
                ("acknowledged", r.acknowledged),
                ("retried", r.retried),
                ("failed", r.failed),
                ("bad_authenticator", r.bad_authenticator),
                ("bad_response", r.bad_responses),
                ("skipped", r.skipped),
            ]
            .map(|(outcome, n)| {
                let labels = vec![
                    ("output", o.output.clone()),
                    ("outcome", outcome.to_owned()),
                ];
                (labels, n)
            })
        })
    });
    counter(e, "output_requests", "Requests of outputs that ask a server per record (RADIUS), by outcome: sent, acknowledged, retransmitted, failed (unanswered after the retransmissions), answers refused for their authenticator or otherwise bad, requests about calls in progress skipped.", None, requests)?;
    gauge(e, "output_up", "1 while the output delivers, 0 while its writes fail or its destination cannot be reached.", None, eachf(&|o| if o.trouble().is_some() { 0.0 } else { 1.0 }))
}

fn alerts(e: &mut DescriptorEncoder<'_>, report: &AlertReport) -> Result<(), Error> {
    let raised = report.by_rule().map(|(rule, n)| {
        let labels: Labels = vec![("rule", rule.to_owned())];
        (labels, n)
    });
    counter(
        e,
        "alerts",
        "Alerts raised, by rule (a first alert and each summary of an attack going on).",
        None,
        raised,
    )?;
    let written = report.outputs.iter().flat_map(|(output, written, failed)| {
        [("written", *written), ("failed", *failed)].map(|(outcome, n)| {
            let labels: Labels = vec![("output", output.clone()), ("outcome", outcome.to_owned())];
            (labels, n)
        })
    });
    counter(
        e,
        "alert_writes",
        "Alerts each alert output wrote, or could not.",
        None,
        written,
    )?;
    counter(
        e,
        "alert_overflow",
        "Offenders or calls the alert rules could not follow: their tables were full.",
        None,
        [(NO_LABELS, report.counts.overflow)],
    )
}

fn hep(e: &mut DescriptorEncoder<'_>, reports: &[HepReport]) -> Result<(), Error> {
    let each = |pick: &dyn Fn(&HepReport) -> u64| -> Vec<(Labels, u64)> {
        reports
            .iter()
            .map(|r| (vec![("destination", r.destination.clone())], pick(r)))
            .collect()
    };
    counter(
        e,
        "hep_packets",
        "HEP packets meant for each collector.",
        None,
        each(&|r| r.offered),
    )?;
    counter(
        e,
        "hep_sent_packets",
        "HEP packets handed to each collector's socket.",
        None,
        each(&|r| r.sent),
    )?;
    let unsent = reports.iter().flat_map(|r| {
        [
            ("queue_full", r.queue_full),
            ("oversize", r.oversize),
            ("unreachable", r.unreachable),
        ]
        .map(|(reason, n)| {
            let labels: Labels = vec![
                ("destination", r.destination.clone()),
                ("reason", reason.to_owned()),
            ];
            (labels, n)
        })
    });
    counter(
        e,
        "hep_unsent_packets",
        "HEP packets never sent: the queue was full, too large, or the collector unreachable.",
        None,
        unsent,
    )?;
    counter(
        e,
        "hep_reconnects",
        "Times a TCP or TLS connection to each collector was made again after it broke.",
        None,
        each(&|r| r.reconnects),
    )?;
    gauge(
        e,
        "hep_queue_packets",
        "HEP packets waiting for each collector.",
        None,
        reports.iter().map(|r| {
            let waiting = r.offered.saturating_sub(r.sent + r.not_sent());
            (vec![("destination", r.destination.clone())], waiting as f64)
        }),
    )
}

fn counter<L: EncodeLabelSet>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), Error> {
    let mut m = e.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (labels, value) in samples {
        m.encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
    }
    Ok(())
}

fn gauge<L: EncodeLabelSet>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), Error> {
    let mut m = e.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in samples {
        m.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

fn histogram(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    h: &Histogram,
) -> Result<(), Error> {
    let mut m: MetricEncoder<'_> =
        e.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    m.encode_histogram::<NoLabelSet>(h.sum(), h.count(), &h.buckets(), None)
}

fn unix_seconds(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
