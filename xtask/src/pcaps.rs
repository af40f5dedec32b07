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
}

const CASES: &[Case] = &[
    Case {
        name: "answered-caller-bye",
        about: "answered after 1 s of ringing, caller hangs up after 3 s",
        uas: "uas-answer.xml",
        uac: "uac-answer.xml",
        uas_port: 5060,
        uac_port: 5062,
    },
    Case {
        name: "answered-callee-bye",
        about: "answered after 0.5 s, callee hangs up after 2 s",
        uas: "uas-answer-hangup.xml",
        uac: "uac-wait-bye.xml",
        uas_port: 5060,
        uac_port: 5062,
    },
    Case {
        name: "busy-486",
        about: "rings 1.5 s, then 486 Busy Here",
        uas: "uas-busy.xml",
        uac: "uac-reject.xml",
        uas_port: 5060,
        uac_port: 5062,
    },
    Case {
        name: "no-answer-480",
        about: "rings 2 s, then 480 Temporarily Unavailable",
        uas: "uas-unavailable.xml",
        uac: "uac-reject.xml",
        uas_port: 5060,
        uac_port: 5062,
    },
    Case {
        name: "no-answer-408",
        about: "rings 3 s, then 408 Request Timeout",
        uas: "uas-timeout.xml",
        uac: "uac-reject.xml",
        uas_port: 5060,
        uac_port: 5062,
    },
    Case {
        name: "cancel-after-ringing",
        about: "caller cancels after 2 s of ringing; 487",
        uas: "uas-cancel.xml",
        uac: "uac-cancel.xml",
        uas_port: 5060,
        uac_port: 5062,
    },
    Case {
        name: "congestion-503",
        about: "gateway answers 503 with Q.850 cause 34 at once",
        uas: "uas-congested.xml",
        uac: "uac-reject.xml",
        uas_port: 5060,
        uac_port: 5062,
    },
    Case {
        name: "auth-407-answered",
        about: "407 challenge, retry with credentials, answered, caller hangs up after 1.5 s",
        uas: "uas-auth.xml",
        uac: "uac-auth.xml",
        uas_port: 5060,
        uac_port: 5062,
    },
    Case {
        name: "answered-no-bye",
        about: "answered, and the capture ends before any BYE",
        uas: "uas-no-bye.xml",
        uac: "uac-no-bye.xml",
        uas_port: 5060,
        uac_port: 5062,
    },
    Case {
        name: "register-options",
        about: "REGISTER challenged then accepted, OPTIONS ping: no call",
        uas: "uas-registrar.xml",
        uac: "uac-register-options.xml",
        uas_port: 5060,
        uac_port: 5062,
    },
    Case {
        name: "nonstandard-port-15060",
        about: "answered call between ports 15062 and 15060, found by its start line",
        uas: "uas-answer.xml",
        uac: "uac-answer.xml",
        uas_port: 15060,
        uac_port: 15062,
    },
];

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
    run(crate::cargo().args(["build", "--release", "-q", "-p", "spycraft"]))?;
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

fn record(case: &Case, scenarios: &Path, pcap: &Path) -> Result<()> {
    let filter = format!(
        "udp and host 127.0.0.1 and (port {} or port {})",
        case.uas_port, case.uac_port
    );
    let mut tcpdump = Reaped(
        Command::new("tcpdump")
            // Immediate mode: without it, libpcap hands packets over in blocks and SIGINT
            // loses the last block.
            .args(["-i", "lo", "-n", "-U", "--immediate-mode", "-w"])
            .arg(pcap)
            .arg(&filter)
            .stderr(Stdio::null())
            .spawn()
            .context("tcpdump (root needed)")?,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let sipp = |script: &str, port: u16| {
        let mut cmd = Command::new("sipp");
        cmd.arg("-sf")
            .arg(scenarios.join(script))
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-m",
                "1",
                "-nostdin",
                "-timeout",
                "30s",
            ])
            .stdout(Stdio::null());
        cmd
    };
    let mut uas = Reaped(
        sipp(case.uas, case.uas_port)
            .spawn()
            .context("sipp (uas)")?,
    );
    std::thread::sleep(Duration::from_millis(300));
    let uac = sipp(case.uac, case.uac_port)
        .arg(format!("127.0.0.1:{}", case.uas_port))
        .args(["-s", "bob"])
        .status()
        .context("sipp (uac)")?;
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
