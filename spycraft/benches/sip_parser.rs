// SPDX-License-Identifier: AGPL-3.0-or-later
//! Parser throughput on realistic messages (bytes/s), and the whole parse stage per frame:
//! `cargo bench -p spycraft --bench sip_parser`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use spycraft::capture::Frame;
use spycraft::decode::LinkType;
use spycraft::pipeline::{ParseStage, SipPorts};
use spycraft::sip::{parse_datagram, EMPTY_HEADER, MAX_HEADERS};

const SDP: &str = "v=0\r\no=- 4711 1 IN IP4 10.1.0.7\r\ns=call\r\nc=IN IP4 10.1.0.7\r\nt=0 0\r\n\
m=audio 16384 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn messages() -> Vec<(&'static str, Vec<u8>)> {
    let dialog = "From: \"Caller\" <sip:+15550100@10.1.0.7>;tag=ft4711\r\n\
To: <sip:+16660100@10.2.0.1>;tag=tt4711\r\nCall-ID: 00001267-5bd1-4c1e@10.1.0.7\r\n";
    let invite = format!(
        "INVITE sip:+16660100@10.2.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.0.7:5060;branch=z9hG4bK1267.1\r\n\
Max-Forwards: 70\r\nFrom: \"Caller\" <sip:+15550100@10.1.0.7>;tag=ft4711\r\nTo: <sip:+16660100@10.2.0.1>\r\n\
Call-ID: 00001267-5bd1-4c1e@10.1.0.7\r\nCSeq: 1 INVITE\r\nContact: <sip:+15550100@10.1.0.7:5060>\r\n\
User-Agent: phone/1.0\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\nContent-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.1.0.7:5060;branch=z9hG4bK1267.1\r\n{dialog}CSeq: 1 INVITE\r\n\
Server: pbx/2.0\r\nContact: <sip:pbx@10.2.0.1:5060>\r\nContent-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    let ringing = format!(
        "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 10.1.0.7:5060;branch=z9hG4bK1267.1\r\n{dialog}\
CSeq: 1 INVITE\r\nServer: pbx/2.0\r\nContent-Length: 0\r\n\r\n"
    );
    let ack = format!(
        "ACK sip:+16660100@10.2.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.0.7:5060;branch=z9hG4bK1267.a\r\n\
Max-Forwards: 70\r\n{dialog}CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    let bye = format!(
        "BYE sip:pbx@10.2.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.0.7:5060;branch=z9hG4bKb1267\r\n\
Max-Forwards: 70\r\n{dialog}CSeq: 2 BYE\r\nReason: Q.850;cause=16\r\nContent-Length: 0\r\n\r\n"
    );
    vec![
        ("invite_sdp", invite.into_bytes()),
        ("ringing_180", ringing.into_bytes()),
        ("ok_200_sdp", ok.into_bytes()),
        ("ack", ack.into_bytes()),
        ("bye", bye.into_bytes()),
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

fn parse_stage(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_stage_frame");
    let mut stage = ParseStage::new(SipPorts::default(), vec!["X-CollateID".into()]);
    // Frames a tenth of a second apart, so none is taken for a mirror's duplicate.
    let mut ts_us = 0i64;
    for (name, raw) in messages() {
        let data = frame(&raw);
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                ts_us += 100_000;
                let f = Frame {
                    ts_us,
                    link: LinkType::Ethernet,
                    original_len: data.len() as u32,
                    data: black_box(&data),
                };
                let mut n = 0;
                stage.on_frame(&f, &mut |_| n += 1);
                black_box(n)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parser, parse_stage);
criterion_main!(benches);
