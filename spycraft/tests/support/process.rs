// SPDX-License-Identifier: AGPL-3.0-or-later
//! Child processes of the privileged tests: sensors, sipp, tcpdump.

use std::process::{Child, Command};

use super::postgres::is_root;

/// Runs iproute2's `ip` with `args` and fails the test if it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        super::text(&out.stderr)
    );
}

/// Whether this run may capture; panics under CI=true when it may not.
pub fn may_capture() -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "live capture tests must run in CI, as root"
    );
    eprintln!("skipped: live capture needs root");
    false
}

/// Kills the child on every path out of the test, unless it was waited for.
pub struct Reaped(Option<Child>);

impl Reaped {
    pub fn spawn(cmd: &mut Command) -> Self {
        Self(Some(cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))))
    }

    /// Takes charge of a child already started.
    pub fn spawn_from(child: Child) -> Self {
        Self(Some(child))
    }

    pub fn child(&self) -> &Child {
        self.0.as_ref().expect("running")
    }

    /// Waits for the child and collects what it printed.
    pub fn output(mut self) -> std::process::Output {
        self.0
            .take()
            .expect("running")
            .wait_with_output()
            .expect("waited")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn interrupt(child: &Child) {
    // SAFETY: kill with our own child's pid and a valid signal.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

/// What a running child says on a stream, line by line, read on a thread of its own so the
/// test can wait for a line while the child goes on.
pub struct Said(std::sync::mpsc::Receiver<String>);

impl Said {
    pub fn new(stream: impl std::io::Read + Send + 'static) -> Self {
        use std::io::BufRead;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self(rx)
    }

    /// Waits for a line containing `what`; returns the lines up to it. Panics, with what was
    /// said, if none comes within `within`.
    pub fn wait_for(&self, what: &str, within: std::time::Duration) -> Vec<String> {
        let until = std::time::Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            match self.0.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(what);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no {what:?} said within {within:?}: {seen:#?}");
    }

    /// Everything said since, once the child has ended.
    pub fn rest(&self) -> Vec<String> {
        self.0.iter().collect()
    }
}

/// `sipp` (the command given: plain, or run in a namespace) playing a bundled scenario from
/// `address:port`, `calls` calls at most `calls` at once, quiet, given up after 2 minutes.
pub fn sipp(mut sipp: Command, script: &str, address: &str, port: u16, calls: u32) -> Command {
    let scenarios = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps/scenarios");
    let calls = calls.to_string();
    sipp.arg("-sf")
        .arg(scenarios.join(script))
        .args(["-i", address, "-p", &port.to_string()])
        .args(["-m", &calls, "-l", &calls, "-nostdin", "-timeout", "120s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    sipp
}

/// Plays each pair (callee script, caller script, callee port, caller port) on loopback: the
/// callees first, then each caller calling `bob` at its callee, `extra` arguments added;
/// waits until every sipp has ended and asserts that each succeeded.
pub fn place_calls(
    pairs: &[(&str, &str, u16, u16)],
    sipp: impl Fn(&str, u16) -> Command,
    extra: &[&str],
) {
    let callees: Vec<Reaped> = pairs
        .iter()
        .map(|(uas, _, port, _)| Reaped::spawn(&mut sipp(uas, *port)))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let callers: Vec<Reaped> = pairs
        .iter()
        .map(|(_, uac, callee, port)| {
            let callee = format!("127.0.0.1:{callee}");
            Reaped::spawn(sipp(uac, *port).args(["-s", "bob"]).args(extra).arg(callee))
        })
        .collect();
    for caller in callers {
        let status = caller.output().status;
        assert!(status.success(), "a sipp caller failed: {status}");
    }
    for callee in callees {
        let status = callee.output().status;
        assert!(status.success(), "a sipp callee failed: {status}");
    }
}

/// What running a tool gave, or `None` when it is not installed here. Under CI=true a
/// missing tool fails the test: xtask installs `package`.
pub fn installed<T>(tool: &str, package: &str, run: std::io::Result<T>) -> Option<T> {
    match run {
        Ok(done) => Some(done),
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{tool} (Debian's {package}) must be installed in CI: {e}"
            );
            eprintln!("skipped {tool}: {e}");
            None
        }
    }
}

/// Debian's tcpdump writing `filter`'s packets (on loopback unless told) to a pcap, with a 64 MiB kernel
/// buffer so a loaded two-core machine does not drop packets under the test's feet.
pub struct Tcpdump {
    running: Reaped,
    said: std::path::PathBuf,
}

impl Tcpdump {
    /// Starts tcpdump and waits until it has opened `pcap` (it opens the file once
    /// capturing). What it says goes next to the pcap, in `<pcap>.log`.
    pub fn start(pcap: &std::path::Path, filter: &str) -> Self {
        Self::start_on("lo", pcap, filter)
    }

    /// As [`Tcpdump::start`], on `interface`.
    pub fn start_on(interface: &str, pcap: &std::path::Path, filter: &str) -> Self {
        let said = pcap.with_extension("tcpdump.log");
        let running = Reaped::spawn(
            Command::new("tcpdump")
                .args([
                    "-i",
                    interface,
                    "-n",
                    "-B",
                    "65536",
                    "-U",
                    "--immediate-mode",
                    "-w",
                ])
                .arg(pcap)
                .arg(filter)
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(&said).expect("a tcpdump log")),
        );
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::metadata(pcap).map_or(0, |m| m.len()) == 0 {
            assert!(std::time::Instant::now() < until, "tcpdump never started");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { running, said }
    }

    /// Stops tcpdump (SIGINT, so it finishes the file) and fails the test, saying so, if
    /// the kernel dropped any packet: a capture with holes is no reference.
    pub fn stop(self) {
        interrupt(self.running.child());
        let status = self.running.output().status;
        let said = std::fs::read_to_string(&self.said).unwrap_or_default();
        assert!(status.success(), "tcpdump: {status}: {said}");
        assert!(
            said.lines().any(|l| l == "0 packets dropped by kernel"),
            "tcpdump lost packets, the reference capture is incomplete: {said}"
        );
    }
}
