// SPDX-License-Identifier: AGPL-3.0-or-later
//! The hot path stage by stage, on realistic messages (INVITE and 200 with SDP, 180, ACK,
//! BYE): the SIP parser and the frame decoder in bytes/s, the whole parse stage per frame,
//! and the call stage per message over whole calls. `cargo bench -p spycraft --bench hot_path`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use spycraft::call::{CallTracker, TrackerConfig};
use spycraft::capture::Frame;
use spycraft::decode::{
    Consumed, Continuity, DecodeLimits, Decoder, LinkType, PacketInfo, PayloadSink,
};
use spycraft::packet::Timestamp;
use spycraft::pipeline::{Input, ParseStage, SipPorts};
use spycraft::sip::{parse_datagram, SipEvent, EMPTY_HEADER, MAX_HEADERS};

const SDP: &str = "v=0\r\no=- 4711 1 IN IP4 10.1.0.7\r\ns=call\r\nc=IN IP4 10.1.0.7\r\nt=0 0\r\n\
m=audio 16384 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn messages() -> Vec<(&'static str, Vec<u8>)> {
    call_messages(1267)
}

/// The messages of call `n`, in the order they travel (the BYE's 200 aside).
fn call_messages(n: u32) -> Vec<(&'static str, Vec<u8>)> {
    let dialog = format!(
        "From: \"Caller\" <sip:+15550100@10.1.0.7>;tag=ft{n}\r\n\
To: <sip:+16660100@10.2.0.1>;tag=tt{n}\r\nCall-ID: {n:08}-5bd1-4c1e@10.1.0.7\r\n"
    );
    let invite = format!(
        "INVITE sip:+16660100@10.2.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.0.7:5060;branch=z9hG4bK{n}.1\r\n\
Max-Forwards: 70\r\nFrom: \"Caller\" <sip:+15550100@10.1.0.7>;tag=ft{n}\r\nTo: <sip:+16660100@10.2.0.1>\r\n\
Call-ID: {n:08}-5bd1-4c1e@10.1.0.7\r\nCSeq: 1 INVITE\r\nContact: <sip:+15550100@10.1.0.7:5060>\r\n\
User-Agent: phone/1.0\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\nContent-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.1.0.7:5060;branch=z9hG4bK{n}.1\r\n{dialog}CSeq: 1 INVITE\r\n\
Server: pbx/2.0\r\nContact: <sip:pbx@10.2.0.1:5060>\r\nContent-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    let ringing = format!(
        "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 10.1.0.7:5060;branch=z9hG4bK{n}.1\r\n{dialog}\
CSeq: 1 INVITE\r\nServer: pbx/2.0\r\nContent-Length: 0\r\n\r\n"
    );
    let ack = format!(
        "ACK sip:+16660100@10.2.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.0.7:5060;branch=z9hG4bK{n}.a\r\n\
Max-Forwards: 70\r\n{dialog}CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    let bye = format!(
        "BYE sip:pbx@10.2.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.0.7:5060;branch=z9hG4bKb{n}\r\n\
Max-Forwards: 70\r\n{dialog}CSeq: 2 BYE\r\nReason: Q.850;cause=16\r\nContent-Length: 0\r\n\r\n"
    );
    let bye_ok = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.1.0.7:5060;branch=z9hG4bKb{n}\r\n{dialog}\
CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    vec![
        ("invite_sdp", invite.into_bytes()),
        ("ringing_180", ringing.into_bytes()),
        ("ok_200_sdp", ok.into_bytes()),
        ("ack", ack.into_bytes()),
        ("bye", bye.into_bytes()),
        ("bye_ok", bye_ok.into_bytes()),
    ]
}

fn parser(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_datagram");
    for (name, raw) in messages() {
        group.throughput(Throughput::Bytes(raw.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut headers = [EMPTY_HEADER; MAX_HEADERS];
                let msg = parse_datagram(black_box(&raw), &mut headers).expect("valid");
                black_box(msg.len)
            })
        });
    }
    group.finish();
}

/// Ethernet + IPv4 + UDP around a payload.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = (28 + payload.len()) as u16;
    f.extend_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 1, 0, 7, 10, 2, 0, 1,
    ]);
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&5060u16.to_be_bytes());
    f.extend_from_slice(&5060u16.to_be_bytes());
    f.extend_from_slice(&(total - 20).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Benchmarks `run` on each message's Ethernet frame, frames a tenth of a second apart so
/// none is taken for a mirror's duplicate.
fn per_frame(c: &mut Criterion, group: &str, mut run: impl FnMut(&Frame<'_>) -> usize) {
    let mut group = c.benchmark_group(group);
    let mut ts_us = 0i64;
    for (name, raw) in messages() {
        let data = frame(&raw);
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                ts_us += 100_000;
                let f = Frame::whole(Timestamp(ts_us), LinkType::Ethernet, black_box(&data));
                black_box(run(&f))
            })
        });
    }
    group.finish();
}

fn parse_stage(c: &mut Criterion) {
    let mut stage = ParseStage::new(SipPorts::default(), vec!["X-CollateID".into()]);
    let mut spent = Vec::new();
    per_frame(c, "parse_stage_frame", |f| {
        stage.on_frame(f, &mut |input| spent.push(input));
        let n = spent.len();
        // Back for reuse, as the pipeline does.
        stage.recycle(&mut spent);
        n
    });
}

/// Counts what the decoder hands on; parses nothing.
struct Payloads(usize);

impl PayloadSink for Payloads {
    fn datagram(&mut self, _: &PacketInfo, payload: &[u8]) {
        self.0 += payload.len();
    }

    fn stream(&mut self, _: &PacketInfo, data: &[u8], _: Continuity) -> Consumed {
        Consumed::Bytes(data.len())
    }

    fn tls_flow(&mut self, _: &PacketInfo) {}
}

fn decoder(c: &mut Criterion) {
    let mut decoder = Decoder::new(DecodeLimits::default());
    per_frame(c, "decode_frame", |f| {
        let mut sink = Payloads(0);
        decoder.on_frame(f, &mut sink);
        sink.0
    });
}

/// The events of `calls` answered calls, one starting every 10 ms, in capture order.
fn call_events(calls: u32) -> Vec<SipEvent> {
    let mut stage = ParseStage::new(SipPorts::default(), vec![]);
    let mut timed: Vec<(i64, Vec<u8>)> = Vec::new();
    // Offsets of INVITE, 180, 200, ACK, BYE and its 200 within a 30 s call.
    let offsets_ms = [0, 400, 3_000, 3_010, 30_000, 30_020];
    for n in 0..calls {
        let start = i64::from(n) * 10_000;
        for ((_, raw), ms) in call_messages(n).into_iter().zip(offsets_ms) {
            timed.push((start + ms * 1000, frame(&raw)));
        }
    }
    timed.sort_by_key(|(ts, _)| *ts);
    let mut events = Vec::with_capacity(timed.len());
    for (ts_us, data) in &timed {
        let f = Frame::whole(Timestamp(*ts_us), LinkType::Ethernet, data);
        stage.on_frame(&f, &mut |input| {
            if let Input::Event(ev) = input {
                events.push(ev);
            }
        });
    }
    events
}

fn call_stage(c: &mut Criterion) {
    let mut group = c.benchmark_group("call_stage");
    let events = call_events(10_000);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("answered_calls_per_message", |b| {
        b.iter_batched(
            || CallTracker::new(TrackerConfig::default()),
            |mut tracker| {
                let mut records = 0;
                for ev in &events {
                    tracker.on_event(ev, &mut |r| {
                        black_box(&r);
                        records += 1;
                    });
                }
                tracker.finish(&mut |r| {
                    black_box(&r);
                    records += 1;
                });
                assert_eq!(records, 10_000);
                tracker
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, parser, decoder, parse_stage, call_stage);
criterion_main!(benches);
