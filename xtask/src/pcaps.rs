// SPDX-License-Identifier: AGPL-3.0-or-later
//! The bundled regression captures: each `pcaps/<case>/` holds `capture.pcap`, recorded from a
//! pair of sipp scenarios on loopback, `expected.jsonl`, the records spycraft must produce from
//! it, and `about.txt`, one line saying what the call does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::run;

/// One scenario: the callee's and the caller's sipp scripts and the ports they use.
struct Case {
    name: &'static str,
    about: &'static str,
    uas: &'static str,
    uac: &'static str,
    uas_port: u16,
    uac_port: u16,
    /// sipp's `-t`: `u1` (UDP), `t1` (one TCP connection), `tn` (a connection per call).
    transport: &'static str,
    /// Calls placed (at most 3 at once).
    calls: u32,
    net: Net,
    /// More calls between more sipp instances, started while the first runs (a transfer's
    /// consultation and new call).
    also: &'static [SecondCall],
}

/// Another pair of scenarios: its callee (user `service`) and its caller, started `after_ms`
/// after the first caller; `call_id` is sipp's `-cid_str` for a Call-ID others must know.
struct SecondCall {
    uas: &'static str,
    uac: &'static str,
    service: &'static str,
    uas_port: u16,
    uac_port: u16,
    after_ms: u64,
    call_id: Option<&'static str>,
}

/// Where a scenario runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Net {
    Loopback,
    /// Callee in a network namespace behind a veth pair with a 576-byte MTU, so that large
    /// datagrams leave the caller in IP fragments.
    SmallMtuNamespace,
    /// A stateful proxy (Kamailio, `scenarios/proxy.cfg`) on loopback port [`PROXY_PORT`]
    /// between the caller and the callee: the capture holds both hops.
    KamailioProxy,
}

/// Where the proxy of [`Net::KamailioProxy`] listens (its configuration relays to 5060).
const PROXY_PORT: u16 = 5070;

/// One UDP call on loopback between ports 5062 and 5060: what most cases are.
const fn udp_case(
    name: &'static str,
    about: &'static str,
    uas: &'static str,
    uac: &'static str,
) -> Case {
    Case {
        name,
        about,
        uas,
        uac,
        uas_port: 5060,
        uac_port: 5062,
        transport: "u1",
        calls: 1,
        net: Net::Loopback,
        also: &[],
    }
}

const CASES: &[Case] = &[
    udp_case("answered-caller-bye", "answered after 1 s of ringing, caller hangs up after 3 s", "uas-answer.xml", "uac-answer.xml"),
    udp_case("answered-callee-bye", "answered after 0.5 s, callee hangs up after 2 s", "uas-answer-hangup.xml", "uac-wait-bye.xml"),
    udp_case("busy-486", "rings 1.5 s, then 486 Busy Here", "uas-busy.xml", "uac-reject.xml"),
    udp_case("no-answer-480", "rings 2 s, then 480 Temporarily Unavailable", "uas-unavailable.xml", "uac-reject.xml"),
    udp_case("no-answer-408", "rings 3 s, then 408 Request Timeout", "uas-timeout.xml", "uac-reject.xml"),
    udp_case("cancel-after-ringing", "caller cancels after 2 s of ringing; 487", "uas-cancel.xml", "uac-cancel.xml"),
    udp_case("congestion-503", "gateway answers 503 with Q.850 cause 34 at once", "uas-congested.xml", "uac-reject.xml"),
    udp_case("auth-407-answered", "407 challenge, retry with credentials, answered, caller hangs up after 1.5 s", "uas-auth.xml", "uac-auth.xml"),
    udp_case("answered-no-bye", "answered, and the capture ends before any BYE", "uas-no-bye.xml", "uac-no-bye.xml"),
    udp_case("register-options", "REGISTER challenged then accepted, OPTIONS ping: no call", "uas-registrar.xml", "uac-register-options.xml"),
    Case { uas_port: 15060, uac_port: 15062, ..udp_case("nonstandard-port-15060", "answered call between ports 15062 and 15060, found by its start line", "uas-answer.xml", "uac-answer.xml") },
    Case { transport: "t1", calls: 3, ..udp_case("tcp-one-connection", "three answered calls over one TCP connection (sipp -t t1)", "uas-answer.xml", "uac-answer.xml") },
    Case { transport: "tn", calls: 3, ..udp_case("tcp-connection-per-call", "three answered calls, each over its own TCP connection (sipp -t tn)", "uas-answer.xml", "uac-answer.xml") },
    Case { calls: 2, ..udp_case("b2bua-a-leg", "caller side of a B2BUA: two answered calls, X-CollateID b2bua-call-1 and -2", "uas-answer.xml", "uac-collated.xml") },
    Case { calls: 2, uas_port: 5080, uac_port: 5082, ..udp_case("b2bua-b-leg", "callee side of the same B2BUA: two answered calls with their own Call-IDs and the same X-CollateIDs", "uas-answer.xml", "uac-collated.xml") },
    udp_case("prack-100rel", "a reliable 183 with early media, PRACKed (RFC 3262); answered 1 s later, caller hangs up after 2 s", "uas-prack.xml", "uac-prack.xml"),
    udp_case("forked-second-answers", "a forked INVITE: 180s from two dialogs (different To tags), the second answers after 1 s; caller hangs up after 3 s", "uas-fork.xml", "uac-answer.xml"),
    Case {
        also: &[SecondCall {
            uas: "uas-answer.xml",
            uac: "uac-transfer-target.xml",
            service: "carol",
            uas_port: 5070,
            uac_port: 5064,
            after_ms: 2000,
            call_id: None,
        }],
        ..udp_case("blind-transfer", "Alice calls Bob; after 1 s Bob transfers her to Carol (REFER); she calls Carol (Referred-By: Bob), reports 100 then 200 in NOTIFYs; Bob hangs up; Alice talks to Carol 2 s", "uas-transferor.xml", "uac-transferee.xml")
    },
    udp_case("reinvite-glare", "answered; both parties re-INVITE at once (glare) and each answers 491; caller hangs up after 1 s", "uas-glare.xml", "uac-glare.xml"),
    Case {
        also: &[
            SecondCall {
                uas: "uas-consulted.xml",
                uac: "uac-consult.xml",
                service: "carol",
                uas_port: 5070,
                uac_port: 5064,
                after_ms: 1000,
                call_id: Some("consult-%u@spycraft"),
            },
            SecondCall {
                uas: "uas-answer.xml",
                uac: "uac-replaces.xml",
                service: "carol",
                uas_port: 5072,
                uac_port: 5066,
                after_ms: 2300,
                call_id: None,
            },
        ],
        ..udp_case("attended-transfer", "Alice calls Bob; Bob consults Carol in a call of his own; Bob transfers Alice to Carol replacing the consultation (REFER with Replaces); Alice's INVITE to Carol carries Replaces; Carol hangs up the consultation, Bob hangs up on Alice", "uas-transferor-attended.xml", "uac-transferee.xml")
    },
    udp_case("hold-resume", "answered; caller holds (re-INVITE a=sendonly) after 1 s, resumes (a=sendrecv) 2 s later, hangs up after 1 s more", "uas-hold.xml", "uac-hold.xml"),
    udp_case("session-timer-expired", "answered with a 2 s session timer (RFC 4028) that nobody refreshes and no BYE; an OPTIONS 4 s later runs the capture past the expiry", "uas-session-timer.xml", "uac-session-timer.xml"),
    Case { net: Net::KamailioProxy, ..udp_case("proxy-relays-503-as-500", "a stateful proxy (Kamailio) between caller and callee, both hops captured: the callee answers 503 with Q.850 cause 34, the proxy gives the caller 500 (RFC 3261 16.7)", "uas-congested.xml", "uac-reject-via-proxy.xml") },
    Case { net: Net::KamailioProxy, ..udp_case("proxy-timeout-408", "a stateful proxy (Kamailio) between caller and callee, both hops captured: the callee rings, the proxy gives up after 2 s (fr_inv_timer), answers the caller 408 and cancels the callee (487)", "uas-cancel.xml", "uac-reject-via-proxy.xml") },
    Case { net: Net::SmallMtuNamespace, ..udp_case("udp-fragmented-invite", "a 1.5 KB INVITE over a 576-byte MTU link, in IP fragments; answered, caller hangs up after 2 s", "uas-answer.xml", "uac-big-invite.xml") },
];

/// Addresses and names of the small-MTU namespace (made, and removed, by the recorder).
const NS: &str = "spycraft-mtu576";
const NS_HOST_IF: &str = "sc-mtu0";
const NS_PEER_IF: &str = "sc-mtu1";
const NS_HOST_ADDR: &str = "10.199.76.1";
const NS_PEER_ADDR: &str = "10.199.76.2";

/// The case directories present under `pcaps/`, sorted.
pub fn bundled_cases(root: &Path) -> Result<Vec<PathBuf>> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root.join("pcaps"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("capture.pcap").is_file())
        .collect();
    cases.sort();
    Ok(cases)
}

/// The one-line description of a case.
pub fn describe(case: &Path) -> String {
    std::fs::read_to_string(case.join("about.txt"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Records every case again (or only the named ones) and rewrites its expected records.
pub fn regenerate(root: &Path, only: &[String]) -> Result<()> {
    crate::build_release(&[])?;
    let spycraft = root.join("target/release/spycraft");
    let scenarios = root.join("pcaps/scenarios");
    for case in CASES
        .iter()
        .filter(|c| only.is_empty() || only.iter().any(|o| o == c.name))
    {
        let dir = root.join("pcaps").join(case.name);
        std::fs::create_dir_all(&dir)?;
        eprintln!("xtask: recording {}", case.name);
        record(case, &scenarios, &dir.join("capture.pcap"))
            .with_context(|| format!("recording {}", case.name))?;
        std::fs::write(dir.join("about.txt"), format!("{}\n", case.about))?;
        let out = Command::new(&spycraft)
            .args([
                "analyze", "--format", "jsonl", "--node", "golden", "--quiet",
            ])
            .arg(dir.join("capture.pcap"))
            .output()?;
        if !out.status.success() {
            bail!(
                "analyze failed on {}: {}",
                case.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::write(dir.join("expected.jsonl"), &out.stdout)?;
    }
    Ok(())
}

/// Kills the child on every exit path, so a failed recording leaves no sipp or tcpdump behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The veth pair and namespace of [`Net::SmallMtuNamespace`]; removed on drop.
struct SmallMtuNamespace;

impl SmallMtuNamespace {
    fn create() -> Result<Self> {
        let _ = Command::new("ip").args(["netns", "del", NS]).status();
        let ns = Self;
        let ip = |args: &[&str]| run(Command::new("ip").args(args));
        ip(&["netns", "add", NS])?;
        ip(&[
            "link", "add", NS_HOST_IF, "type", "veth", "peer", "name", NS_PEER_IF,
        ])?;
        ip(&["link", "set", NS_PEER_IF, "netns", NS])?;
        ip(&[
            "addr",
            "add",
            &format!("{NS_HOST_ADDR}/24"),
            "dev",
            NS_HOST_IF,
        ])?;
        ip(&["link", "set", NS_HOST_IF, "mtu", "576", "up"])?;
        ip(&[
            "-n",
            NS,
            "addr",
            "add",
            &format!("{NS_PEER_ADDR}/24"),
            "dev",
            NS_PEER_IF,
        ])?;
        ip(&["-n", NS, "link", "set", NS_PEER_IF, "mtu", "576", "up"])?;
        ip(&["-n", NS, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for SmallMtuNamespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", NS_HOST_IF])
            .status();
        let _ = Command::new("ip").args(["netns", "del", NS]).status();
    }
}

/// Kamailio and the worker processes it forks, in a process group of their own; all are
/// stopped on drop.
struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        // SAFETY: kill with the negated pid of a group leader we started, and a valid signal.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Starts Kamailio in the foreground with the scenarios' proxy configuration; it is stopped
/// when the returned value is dropped.
fn start_proxy(scenarios: &Path) -> Result<Proxy> {
    use std::os::unix::process::CommandExt;
    let runtime = std::env::temp_dir().join("spycraft-pcaps-kamailio");
    std::fs::create_dir_all(&runtime)?;
    let proxy = Command::new("kamailio")
        .arg("-f")
        .arg(scenarios.join("proxy.cfg"))
        // Foreground, no daemon; log to stderr; runtime files in a directory of our own.
        .args(["-DD", "-E", "-Y"])
        .arg(&runtime)
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("kamailio (the kamailio package)")?;
    Ok(Proxy(proxy))
}

fn record(case: &Case, scenarios: &Path, pcap: &Path) -> Result<()> {
    let _namespace = match case.net {
        Net::SmallMtuNamespace => {
            Some(SmallMtuNamespace::create().context("network namespace (root needed)")?)
        }
        Net::Loopback | Net::KamailioProxy => None,
    };
    let (interface, uac_ip, uas_ip) = match case.net {
        Net::Loopback | Net::KamailioProxy => ("lo", "127.0.0.1", "127.0.0.1"),
        Net::SmallMtuNamespace => (NS_HOST_IF, NS_HOST_ADDR, NS_PEER_ADDR),
    };
    // With a connection per call the caller's ports are ephemeral; the callee's port and
    // address still select every packet of the scenario.
    let mut ports = vec![case.uas_port, case.uac_port];
    if case.net == Net::KamailioProxy {
        ports.push(PROXY_PORT);
    }
    for also in case.also {
        ports.extend([also.uas_port, also.uac_port]);
    }
    let ports: Vec<String> = ports.iter().map(|p| format!("port {p}")).collect();
    let filter = format!(
        "host {uas_ip} and ({} or ip[6:2] & 0x1fff != 0)",
        ports.join(" or ")
    );
    let mut tcpdump = Reaped(
        Command::new("tcpdump")
            // Immediate mode: without it, libpcap hands packets over in blocks and SIGINT
            // loses the last block.
            .args(["-i", interface, "-n", "-U", "--immediate-mode", "-w"])
            .arg(pcap)
            .arg(&filter)
            .stderr(Stdio::null())
            .spawn()
            .context("tcpdump (root needed)")?,
    );
    let _proxy = match case.net {
        Net::KamailioProxy => Some(start_proxy(scenarios)?),
        _ => None,
    };
    std::thread::sleep(Duration::from_millis(1500));
    let calls = case.calls.to_string();
    let in_namespace = case.net == Net::SmallMtuNamespace;
    let sipp = |script: &str, ip: &str, port: u16, in_namespace: bool| {
        let mut cmd = if in_namespace {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", NS, "sipp"]);
            cmd
        } else {
            Command::new("sipp")
        };
        cmd.arg("-sf")
            .arg(scenarios.join(script))
            .args(["-i", ip, "-t", case.transport]);
        // A caller with a connection per call binds each to its own ephemeral port.
        let is_uac = script.starts_with("uac");
        if !(is_uac && case.transport == "tn") {
            cmd.args(["-p", &port.to_string()]);
        }
        cmd.args([
            "-m",
            &calls,
            "-l",
            "3",
            "-max_socket",
            "100",
            "-nostdin",
            "-timeout",
            "60s",
        ])
        .stdout(Stdio::null());
        cmd
    };
    let mut uas = Reaped(
        sipp(case.uas, uas_ip, case.uas_port, in_namespace)
            .spawn()
            .context("sipp (uas)")?,
    );
    let mut more_uas = Vec::new();
    for also in case.also {
        more_uas.push(Reaped(
            sipp(also.uas, uas_ip, also.uas_port, in_namespace)
                .spawn()
                .context("sipp (another uas)")?,
        ));
    }
    std::thread::sleep(Duration::from_millis(300));
    // The caller calls the proxy, when there is one.
    let called_port = match case.net {
        Net::KamailioProxy => PROXY_PORT,
        _ => case.uas_port,
    };
    let mut uac = Reaped(
        sipp(case.uac, uac_ip, case.uac_port, false)
            .arg(format!("{uas_ip}:{called_port}"))
            .args(["-s", "bob"])
            .spawn()
            .context("sipp (uac)")?,
    );
    let started = std::time::Instant::now();
    let mut more_uac = Vec::new();
    for also in case.also {
        let at = Duration::from_millis(also.after_ms);
        std::thread::sleep(at.saturating_sub(started.elapsed()));
        let mut cmd = sipp(also.uac, uac_ip, also.uac_port, false);
        cmd.arg(format!("{uas_ip}:{}", also.uas_port))
            .args(["-s", also.service]);
        if let Some(call_id) = also.call_id {
            cmd.args(["-cid_str", call_id]);
        }
        more_uac.push(Reaped(cmd.spawn().context("sipp (another uac)")?));
    }
    for (mut uac, mut uas) in more_uac.into_iter().zip(more_uas) {
        let (uac, uas) = (uac.0.wait()?, uas.0.wait()?);
        if !uac.success() || !uas.success() {
            bail!("sipp failed: another uac {uac}, uas {uas}");
        }
    }
    let uac = uac.0.wait()?;
    let uas_status = uas.0.wait()?;
    if !uac.success() || !uas_status.success() {
        bail!("sipp failed: uac {uac}, uas {uas_status}");
    }
    std::thread::sleep(Duration::from_millis(1000));
    // SAFETY: kill with a valid pid of our own child and a valid signal number.
    unsafe { libc::kill(tcpdump.0.id() as i32, libc::SIGINT) };
    tcpdump.0.wait()?;
    Ok(())
}
