// SPDX-License-Identifier: AGPL-3.0-or-later
//! Property tests through the whole parse stage: however a TCP stream is cut into segments —
//! at every split point, reordered within the window, duplicated — and however a datagram is
//! fragmented, the same SIP messages come out. A lost segment costs only the message it held.

use etherparse::PacketBuilder;
use spycraft::capture::Frame;
use spycraft::decode::LinkType;
use spycraft::packet::Timestamp;
use spycraft::pipeline::{Input, ParseStage, SipPorts};

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

/// Several messages of one TCP connection, keep-alives between them.
fn stream() -> Vec<u8> {
    let mut s = String::new();
    for (i, method) in ["INVITE", "ACK", "BYE"].iter().enumerate() {
        let body = if i == 0 { SDP } else { "" };
        s.push_str(&format!(
            "{method} sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK{i}\r\n\
             From: <sip:alice@10.0.0.1>;tag=a1\r\nTo: <sip:bob@10.0.0.2>{}\r\nCall-ID: prop-1\r\n\
             CSeq: {} {method}\r\nContent-Length: {}\r\n\r\n{body}",
            if i == 0 { "" } else { ";tag=b2" },
            if i == 2 { 2 } else { 1 },
            body.len()
        ));
        if i == 1 {
            s.push_str("\r\n\r\n");
        }
    }
    s.into_bytes()
}

fn tcp_frame(seq: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let b = PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).tcp(40000, 5060, seq, 65535);
    let b = if syn { b.syn() } else { b.ack(1) };
    b.write(&mut out, payload).expect("build");
    out
}

/// Runs raw-IP frames (timestamp, bytes) through a parse stage; returns what came out.
fn run(frames: &[(i64, Vec<u8>)]) -> Vec<Input> {
    let mut stage = ParseStage::new(SipPorts::default(), Vec::new());
    let mut out = Vec::new();
    for (ts_us, data) in frames {
        let frame = Frame::whole(Timestamp(*ts_us), LinkType::RawIp, data);
        stage.on_frame(&frame, &mut |input| out.push(input));
    }
    // A frame far later lets reassembly give up on what never completed.
    let late = tcp_frame(7, false, b"");
    let frame = Frame {
        time: Timestamp(3_600_000_000),
        link: LinkType::RawIp,
        original_len: late.len() as u32,
        data: &late,
        interface: 0,
    };
    stage.on_frame(&frame, &mut |input| out.push(input));
    out
}

/// The messages as (method or status, CSeq) pairs, for comparing runs.
fn summary(inputs: &[Input]) -> Vec<String> {
    inputs
        .iter()
        .filter_map(|i| match i {
            Input::Event(ev) => Some(format!("{:?} {} {}", ev.kind, ev.cseq.number, ev.call_id())),
            Input::StreamGap { .. }
            | Input::Clock { .. }
            | Input::CaptureLoss
            | Input::Flush
            | Input::Malformed { .. } => None,
        })
        .collect()
}

fn segments(data: &[u8], cuts: &[usize]) -> Vec<(u32, Vec<u8>)> {
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(data.len());
    bounds
        .windows(2)
        .map(|w| (1 + w[0] as u32, data[w[0]..w[1]].to_vec()))
        .collect()
}

fn frames_of(segs: &[(u32, Vec<u8>)]) -> Vec<(i64, Vec<u8>)> {
    let mut frames = vec![(0, tcp_frame(0, true, b""))];
    frames.extend(
        segs.iter()
            .enumerate()
            .map(|(i, (seq, bytes))| (1 + i as i64, tcp_frame(*seq, false, bytes))),
    );
    frames
}

struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[test]
fn every_split_point_gives_the_same_messages() {
    let data = stream();
    let whole = summary(&run(&frames_of(&segments(&data, &[]))));
    assert_eq!(whole.len(), 3, "{whole:?}");
    for cut in 1..data.len() {
        let got = summary(&run(&frames_of(&segments(&data, &[cut]))));
        assert_eq!(got, whole, "split at {cut}");
    }
}

#[test]
fn random_segmentation_reordering_and_duplicates_give_the_same_messages() {
    let data = stream();
    let whole = summary(&run(&frames_of(&segments(&data, &[]))));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let mut cuts: Vec<usize> = (0..1 + rng.next(12))
            .map(|_| 1 + rng.next(data.len() - 1))
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut segs = segments(&data, &cuts);
        // Reorder neighbours, and send some segments twice.
        for _ in 0..segs.len() {
            let i = rng.next(segs.len());
            let j = (i + 1).min(segs.len() - 1);
            segs.swap(i, j);
        }
        for _ in 0..rng.next(4) {
            let i = rng.next(segs.len());
            let dup = segs[i].clone();
            segs.insert(rng.next(segs.len() + 1), dup);
        }
        let got = summary(&run(&frames_of(&segs)));
        assert_eq!(got, whole, "round {round}, cuts {cuts:?}");
    }
}

#[test]
fn a_lost_segment_costs_only_its_message_and_is_reported() {
    let data = stream();
    let ack_at = data.windows(3).position(|w| w == b"ACK").expect("ACK");
    // Drop the bytes from inside the INVITE's body to inside the ACK.
    let segs = segments(&data, &[ack_at - 20, ack_at + 10]);
    let frames: Vec<(i64, Vec<u8>)> = vec![
        (0, tcp_frame(0, true, b"")),
        (1, tcp_frame(segs[0].0, false, &segs[0].1)),
        (3_000_000, tcp_frame(segs[2].0, false, &segs[2].1)),
    ];
    let inputs = run(&frames);
    let got = summary(&inputs);
    assert_eq!(got.len(), 1, "only the BYE survives whole: {got:?}");
    assert!(got[0].contains("Bye"), "{got:?}");
    assert!(
        inputs.iter().any(|i| matches!(i, Input::StreamGap { .. })),
        "the loss is reported"
    );
}

#[test]
fn a_message_after_a_long_silence_on_the_connection_is_still_read() {
    let data = stream();
    let bye_at = data.windows(3).position(|w| w == b"BYE").expect("BYE");
    let frames = vec![
        (0, tcp_frame(0, true, b"")),
        (1, tcp_frame(1, false, &data[..bye_at])),
        // Two hours later the flow was long forgotten; the BYE still counts.
        (
            7_200_000_000,
            tcp_frame(1 + bye_at as u32, false, &data[bye_at..]),
        ),
    ];
    assert_eq!(summary(&run(&frames)).len(), 3);
}

#[test]
fn any_fragmentation_of_a_datagram_gives_the_same_message() {
    let mut invite = String::from(
        "INVITE sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKf\r\n\
         From: <sip:alice@10.0.0.1>;tag=a1\r\nTo: <sip:bob@10.0.0.2>\r\nCall-ID: frag-1\r\nCSeq: 1 INVITE\r\n",
    );
    let body = SDP.repeat(30);
    invite.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let mut whole = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(5060, 5060)
        .write(&mut whole, invite.as_bytes())
        .expect("build");
    let reference = summary(&run(&[(0, whole.clone())]));
    assert_eq!(reference.len(), 1);
    let ip_payload = &whole[20..];
    let mut rng = Rng(42);
    for round in 0..200 {
        let size = 8 * (1 + rng.next(100));
        let mut frags: Vec<Vec<u8>> = ip_payload
            .chunks(size)
            .enumerate()
            .map(|(i, chunk)| {
                let mut h = whole[..20].to_vec();
                h[2..4].copy_from_slice(&((20 + chunk.len()) as u16).to_be_bytes());
                h[4..6].copy_from_slice(&(round as u16).to_be_bytes());
                let more = (i + 1) * size < ip_payload.len();
                let offset = ((i * size) / 8) as u16 | if more { 0x2000 } else { 0 };
                h[6..8].copy_from_slice(&offset.to_be_bytes());
                h.extend_from_slice(chunk);
                h
            })
            .collect();
        for _ in 0..frags.len() {
            let (i, j) = (rng.next(frags.len()), rng.next(frags.len()));
            frags.swap(i, j);
        }
        if rng.next(2) == 0 {
            let dup = frags[rng.next(frags.len())].clone();
            frags.push(dup);
        }
        let frames: Vec<(i64, Vec<u8>)> = frags
            .into_iter()
            .enumerate()
            .map(|(i, f)| (i as i64, f))
            .collect();
        assert_eq!(
            summary(&run(&frames)),
            reference,
            "round {round}, fragment size {size}"
        );
    }
}

#[test]
fn memory_stays_bounded_under_half_open_flows_and_unfinished_fragment_trains() {
    let mut stage = ParseStage::new(SipPorts::default(), Vec::new());
    let junk = vec![b'x'; 1000];
    let mut peak = 0;
    for i in 0..200_000u32 {
        // A flow that never completes a message, and a fragment train that never completes.
        let mut tcp = Vec::new();
        PacketBuilder::ipv4(i.to_be_bytes(), [10, 0, 0, 2], 64)
            .tcp(40000, 5060, 1, 65535)
            .write(&mut tcp, &junk)
            .expect("build");
        let mut frag = Vec::new();
        PacketBuilder::ipv4(i.to_be_bytes(), [10, 0, 0, 3], 64)
            .udp(5060, 5060)
            .write(&mut frag, &junk)
            .expect("build");
        frag[6] = 0x20; // more fragments
        for data in [&tcp, &frag] {
            let frame = Frame::whole(Timestamp(i64::from(i) * 100), LinkType::RawIp, data);
            stage.on_frame(&frame, &mut |_| {});
        }
        peak = peak.max(stage.held_bytes());
    }
    let counters = stage.counters().decode;
    // The defaults: 64 MiB for TCP, 32 MiB for fragments.
    assert!(peak <= (64 << 20) + (32 << 20) + 4096, "held {peak} bytes");
    assert!(
        counters.tcp.evicted_flows > 0 || counters.tcp.capped_bytes > 0,
        "{counters:?}"
    );
    assert!(counters.fragments.capped > 0, "{counters:?}");
}
