// SPDX-License-Identifier: AGPL-3.0-or-later
//! A large, deterministic synthetic capture for throughput measurements.
//!
//! `cargo xtask synth [--calls N] [--noise PERCENT] [--out FILE]` writes N overlapping calls
//! (one starting every 5 ms, so about 3,700 are up at once) over Ethernet/IPv4/UDP with SDP
//! bodies, plus RTP-like noise as PERCENT of the frames (10 by default). The outcome mix: 60 % answered, 15 % busy, 10 % cancelled,
//! 5 % 480, 5 % 503, 5 % challenged with 407 and then answered. Beside the capture,
//! `FILE.truth.json` holds the number of calls per disposition and of SIP messages.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// xorshift64*: small, fast and the same everywhere, so the capture is byte-for-byte stable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Answered,
    Busy,
    Cancelled,
    Unavailable,
    Congested,
    ChallengedAnswered,
}

impl Outcome {
    fn pick(rng: &mut Rng) -> Self {
        match rng.below(100) {
            0..=59 => Self::Answered,
            60..=74 => Self::Busy,
            75..=84 => Self::Cancelled,
            85..=89 => Self::Unavailable,
            90..=94 => Self::Congested,
            _ => Self::ChallengedAnswered,
        }
    }

    fn disposition(self) -> &'static str {
        match self {
            Self::Answered | Self::ChallengedAnswered => "answered",
            Self::Busy => "busy",
            Self::Cancelled => "cancelled",
            Self::Unavailable => "no_answer",
            Self::Congested => "congestion",
        }
    }
}

/// One message of a call, to be rendered when its turn comes.
#[derive(Clone, Copy, Debug)]
enum Msg {
    Invite {
        cseq: u32,
        auth: bool,
    },
    Response {
        code: u16,
        cseq: u32,
        method: &'static str,
        sdp: bool,
        tag: bool,
    },
    Ack {
        cseq: u32,
    },
    Cancel,
    Bye {
        by_caller: bool,
    },
    ByeOk {
        by_caller: bool,
    },
}

/// Everything one call's messages are rendered from.
struct Call {
    index: u32,
    caller: [u8; 4],
}

const START_US: u64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z
const PBX: [u8; 4] = [10, 2, 0, 1];

/// Entry point of `cargo xtask synth`.
pub fn command(args: &[String]) -> Result<()> {
    let mut calls = 200_000u32;
    let mut noise = DEFAULT_NOISE_PERCENT;
    let mut out = PathBuf::from("target/bench/synth-200k.pcap");
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--calls" => calls = it.next().context("--calls N")?.parse()?,
            "--noise" => noise = it.next().context("--noise PERCENT")?.parse()?,
            "--out" => out = it.next().context("--out FILE")?.into(),
            other => bail!("synth: unknown argument {other}"),
        }
    }
    let truth = generate_with_noise(calls, noise, &out)?;
    eprintln!("xtask: wrote {} ({truth})", out.display());
    Ok(())
}

/// Share of the frames that are noise unless asked otherwise.
pub const DEFAULT_NOISE_PERCENT: u32 = 10;

/// Writes the capture and its truth file; returns the truth as JSON text.
pub fn generate(calls: u32, out: &Path) -> Result<String> {
    generate_with_noise(calls, DEFAULT_NOISE_PERCENT, out)
}

/// Noise frames per SIP message for `percent` % noise, as a reduced fraction: each message
/// gets `whole` frames and one more with probability `rest / of`.
fn noise_rate(percent: u32) -> Result<(u64, u64, u64)> {
    if percent >= 100 {
        bail!("--noise {percent}: some frames must be SIP");
    }
    let (mut num, mut den) = (u64::from(percent), u64::from(100 - percent));
    let (mut a, mut b) = (num, den);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    if a > 1 {
        num /= a;
        den /= a;
    }
    Ok((num / den, num % den, den))
}

/// As [`generate`], with `noise_percent` % of the frames RTP-like noise.
pub fn generate_with_noise(calls: u32, noise_percent: u32, out: &Path) -> Result<String> {
    let (whole, rest, of) = noise_rate(noise_percent)?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    // (time µs, call, message) for every message, then sorted into capture order.
    let mut schedule: Vec<(u64, u32, Msg)> = Vec::with_capacity(calls as usize * 8);
    let mut by_disposition = std::collections::BTreeMap::<&str, u64>::new();
    for index in 0..calls {
        let outcome = Outcome::pick(&mut rng);
        *by_disposition.entry(outcome.disposition()).or_default() += 1;
        let t0 = u64::from(index) * 5_000;
        let ring = 1_000_000 + rng.below(3_000_000);
        let talk = 5_000_000 + rng.below(25_000_000);
        let by_caller = rng.below(2) == 0;
        let mut at = |dt: u64, msg: Msg| schedule.push((t0 + dt, index, msg));
        let inv = |cseq| Msg::Invite {
            cseq,
            auth: cseq > 1,
        };
        let resp = |code, cseq, sdp, tag| Msg::Response {
            code,
            cseq,
            method: "INVITE",
            sdp,
            tag,
        };
        match outcome {
            Outcome::Answered | Outcome::ChallengedAnswered => {
                let (cseq, t) = if outcome == Outcome::ChallengedAnswered {
                    at(0, inv(1));
                    at(2_000, resp(407, 1, false, true));
                    at(2_500, Msg::Ack { cseq: 1 });
                    (2, 20_000)
                } else {
                    (1, 0)
                };
                at(t, inv(cseq));
                at(t + 3_000, resp(100, cseq, false, false));
                at(t + 40_000, resp(180, cseq, false, true));
                at(t + ring, resp(200, cseq, true, true));
                at(t + ring + 2_000, Msg::Ack { cseq });
                at(t + ring + talk, Msg::Bye { by_caller });
                at(t + ring + talk + 3_000, Msg::ByeOk { by_caller });
            }
            Outcome::Busy | Outcome::Unavailable => {
                let code = if outcome == Outcome::Busy { 486 } else { 480 };
                at(0, inv(1));
                at(3_000, resp(100, 1, false, false));
                at(40_000, resp(180, 1, false, true));
                at(ring, resp(code, 1, false, true));
                at(ring + 1_000, Msg::Ack { cseq: 1 });
            }
            Outcome::Cancelled => {
                at(0, inv(1));
                at(3_000, resp(100, 1, false, false));
                at(40_000, resp(180, 1, false, true));
                at(ring, Msg::Cancel);
                at(
                    ring + 2_000,
                    Msg::Response {
                        code: 200,
                        cseq: 1,
                        method: "CANCEL",
                        sdp: false,
                        tag: true,
                    },
                );
                at(ring + 3_000, resp(487, 1, false, true));
                at(ring + 4_000, Msg::Ack { cseq: 1 });
            }
            Outcome::Congested => {
                at(0, inv(1));
                at(2_000, resp(100, 1, false, false));
                at(9_000, resp(503, 1, false, true));
                at(10_000, Msg::Ack { cseq: 1 });
            }
        }
    }
    schedule.sort_by_key(|&(t, call, _)| (t, call));

    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0])?;
    w.write_all(&65535u32.to_le_bytes())?;
    w.write_all(&1u32.to_le_bytes())?;
    let mut text = String::with_capacity(2048);
    let mut frame = Vec::with_capacity(2048);
    let mut noise = Rng(0xd1ce_5eed_0000_0001);
    let (mut sip_messages, mut noise_frames) = (0u64, 0u64);
    for &(t, index, msg) in &schedule {
        let call = Call {
            index,
            caller: [10, 1, (index >> 8) as u8, index as u8],
        };
        text.clear();
        let from_caller = render(&mut text, &call, msg);
        let (src, dst) = if from_caller {
            (call.caller, PBX)
        } else {
            (PBX, call.caller)
        };
        write_frame(
            &mut w,
            &mut frame,
            START_US + t,
            src,
            5060,
            dst,
            5060,
            text.as_bytes(),
        )?;
        sip_messages += 1;
        // RTP-like frames after the message (at 10 %: one for every nine messages).
        let frames = whole + u64::from(rest > 0 && noise.below(of) < rest);
        for k in 0..frames {
            let payload = [0x80u8; 172];
            let port = 10_000 + 2 * noise.below(5_000) as u16;
            write_frame(
                &mut w,
                &mut frame,
                START_US + t + 1 + k,
                call.caller,
                port,
                PBX,
                port,
                &payload,
            )?;
            noise_frames += 1;
        }
    }
    w.flush()?;
    let counts: Vec<String> = by_disposition
        .iter()
        .map(|(d, n)| format!("\"{d}\":{n}"))
        .collect();
    let truth = format!(
        "{{\"calls\":{calls},\"sip_messages\":{sip_messages},\"noise_frames\":{noise_frames},\"dispositions\":{{{}}}}}",
        counts.join(",")
    );
    std::fs::write(truth_path(out), format!("{truth}\n"))?;
    Ok(truth)
}

/// Where the truth of a synthetic capture is kept.
pub fn truth_path(capture: &Path) -> PathBuf {
    let mut name = capture.as_os_str().to_owned();
    name.push(".truth.json");
    PathBuf::from(name)
}

/// Renders one SIP message; returns whether the caller sent it.
fn render(out: &mut String, call: &Call, msg: Msg) -> bool {
    use std::fmt::Write as _;
    let i = call.index;
    let [a, b, c, d] = call.caller;
    let caller = format!("{a}.{b}.{c}.{d}");
    let from = format!("\"Caller {i}\" <sip:+1555{i:07}@{caller}>;tag=ft{i:x}");
    let to = format!("<sip:+1666{i:07}@10.2.0.1>");
    let to_tag = format!(";tag=tt{i:x}");
    let call_id = format!("{i:08x}-5bd1-4c1e@{caller}");
    let sdp = format!(
        "v=0\r\no=- {i} 1 IN IP4 {caller}\r\ns=call\r\nc=IN IP4 {caller}\r\nt=0 0\r\nm=audio {} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
        10_000 + 2 * (i % 5_000)
    );
    let via = format!("Via: SIP/2.0/UDP {caller}:5060;branch=z9hG4bK{i:x}");
    let _ = match msg {
        Msg::Invite { cseq, auth } => {
            let _ = write!(
                out,
                "INVITE sip:+1666{i:07}@10.2.0.1 SIP/2.0\r\n{via}.{cseq}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:+1555{i:07}@{caller}:5060>\r\nUser-Agent: synth-phone/1.0\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n"
            );
            if auth {
                let _ = write!(out, "Proxy-Authorization: Digest username=\"u{i}\", realm=\"synth\", nonce=\"{i:x}\", uri=\"sip:+1666{i:07}@10.2.0.1\", response=\"0123456789abcdef0123456789abcdef\"\r\n");
            }
            write!(out, "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len())
        }
        Msg::Response { code, cseq, method, sdp: with_sdp, tag } => {
            let reason = match code {
                100 => "Trying",
                180 => "Ringing",
                200 => "OK",
                407 => "Proxy Authentication Required",
                480 => "Temporarily Unavailable",
                486 => "Busy Here",
                487 => "Request Terminated",
                _ => "Service Unavailable",
            };
            let tag = if tag { to_tag.as_str() } else { "" };
            let _ = write!(
                out,
                "SIP/2.0 {code} {reason}\r\n{via}.{cseq}\r\nFrom: {from}\r\nTo: {to}{tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nServer: synth-pbx/2.0\r\n"
            );
            if code == 407 {
                let _ = write!(out, "Proxy-Authenticate: Digest realm=\"synth\", nonce=\"{i:x}\", algorithm=MD5\r\n");
            }
            if with_sdp {
                let body = sdp.replace(&caller, "10.2.0.1");
                write!(out, "Contact: <sip:pbx@10.2.0.1:5060>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}", body.len())
            } else {
                write!(out, "Content-Length: 0\r\n\r\n")
            }
        }
        Msg::Ack { cseq } => write!(
            out,
            "ACK sip:+1666{i:07}@10.2.0.1 SIP/2.0\r\n{via}.a{cseq}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n"
        ),
        Msg::Cancel => write!(
            out,
            "CANCEL sip:+1666{i:07}@10.2.0.1 SIP/2.0\r\n{via}.1\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"
        ),
        Msg::Bye { by_caller } | Msg::ByeOk { by_caller } => {
            let (f, t, cseq) = if by_caller {
                (from.clone(), format!("{to}{to_tag}"), "9 BYE")
            } else {
                (format!("{to}{to_tag}"), from.clone(), "1 BYE")
            };
            if matches!(msg, Msg::Bye { .. }) {
                write!(
                    out,
                    "BYE sip:peer@{} SIP/2.0\r\nVia: SIP/2.0/UDP x;branch=z9hG4bKb{i:x}\r\nMax-Forwards: 70\r\nFrom: {f}\r\nTo: {t}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nReason: Q.850;cause=16\r\nContent-Length: 0\r\n\r\n",
                    if by_caller { "10.2.0.1" } else { caller.as_str() }
                )
            } else {
                write!(
                    out,
                    "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bKb{i:x}\r\nFrom: {f}\r\nTo: {t}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
                )
            }
        }
    };
    match msg {
        Msg::Invite { .. } | Msg::Ack { .. } | Msg::Cancel => true,
        Msg::Response { .. } => false,
        Msg::Bye { by_caller } => by_caller,
        Msg::ByeOk { by_caller } => !by_caller,
    }
}

/// Appends one Ethernet/IPv4/UDP frame as a pcap record.
#[allow(clippy::too_many_arguments)]
fn write_frame(
    w: &mut impl Write,
    frame: &mut Vec<u8>,
    ts_us: u64,
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    payload: &[u8],
) -> Result<()> {
    frame.clear();
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let sum = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&sport.to_be_bytes());
    frame.extend_from_slice(&dport.to_be_bytes());
    frame.extend_from_slice(&(total - 20).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(payload);
    w.write_all(&((ts_us / 1_000_000) as u32).to_le_bytes())?;
    w.write_all(&((ts_us % 1_000_000) as u32).to_le_bytes())?;
    w.write_all(&(frame.len() as u32).to_le_bytes())?;
    w.write_all(&(frame.len() as u32).to_le_bytes())?;
    w.write_all(frame)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::noise_rate;

    #[test]
    fn noise_shares_become_frames_per_message() {
        // 10 %: one frame after one message in nine, as the benchmark's capture always had.
        assert_eq!(noise_rate(10).expect("valid"), (0, 1, 9));
        assert_eq!(noise_rate(90).expect("valid"), (9, 0, 1));
        assert_eq!(noise_rate(50).expect("valid"), (1, 0, 1));
        assert_eq!(noise_rate(0).expect("valid"), (0, 0, 1));
        assert!(noise_rate(100).is_err());
    }
}
