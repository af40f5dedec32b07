// SPDX-License-Identifier: AGPL-3.0-or-later
//! Debian's Kamailio run by a test: started in the foreground with a configuration of the
//! test's own, stopped with its children.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::hep::udp_listening_in;
use super::process::installed;
use super::text;

/// A Kamailio started in the foreground with a configuration of the test's own, its log in
/// a file; stopped with its children (SIGTERM to its process group) when dropped.
pub struct Kamailio {
    child: Child,
    log: PathBuf,
}

impl Kamailio {
    /// Starts Kamailio with `config` in `dir` and waits until it listens on UDP `port`;
    /// `None` when Kamailio is not installed here (outside CI).
    pub fn start(dir: &Path, config: &str, port: u16) -> Option<Self> {
        Self::start_in(None, dir, config, port)
    }

    /// As [`Kamailio::start`], inside network namespace `namespace` if given.
    pub fn start_in(namespace: Option<&str>, dir: &Path, config: &str, port: u16) -> Option<Self> {
        installed(
            "kamailio",
            "kamailio",
            Command::new("kamailio").arg("-v").output(),
        )?;
        std::fs::create_dir_all(dir).expect("a directory");
        let cfg = dir.join("kamailio.cfg");
        std::fs::write(&cfg, config).expect("kamailio.cfg");
        let log = dir.join("kamailio.log");
        let mut command = match namespace {
            Some(ns) => {
                let mut ip = Command::new("ip");
                ip.args(["netns", "exec", ns, "kamailio"]);
                ip
            }
            None => Command::new("kamailio"),
        };
        let child = command
            .arg("-f")
            .arg(&cfg)
            // Foreground, log to stderr, runtime files in the test's directory.
            .args(["-DD", "-E", "-Y"])
            .arg(dir)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("kamailio");
        let mut kamailio = Self { child, log };
        // `ip netns exec` becomes Kamailio: its sockets are in its own process's table.
        let table = format!("/proc/{}/net/udp", kamailio.child.id());
        let until = Instant::now() + Duration::from_secs(10);
        while !udp_listening_in(&table, port) {
            let ended = kamailio.child.try_wait().expect("Kamailio's status");
            assert!(ended.is_none(), "Kamailio ended: {}", kamailio.log());
            assert!(
                Instant::now() < until,
                "Kamailio never listened: {}",
                kamailio.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(kamailio)
    }

    pub fn log(&self) -> String {
        text(&std::fs::read(&self.log).unwrap_or_default())
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let group = -(self.child.id() as i32);
        // SAFETY: a signal to the process group this test started.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// What every configuration here starts with: quiet logging to stderr, two workers, the
/// `listen` sockets (space-separated), Debian's module directory, and pv.
pub fn preamble(listen: &str) -> String {
    let listen: String = listen.split(' ').map(|l| format!("listen={l}\n")).collect();
    format!(
        "#!KAMAILIO\ndebug=1\nlog_stderror=yes\nfork=yes\nchildren=2\nauto_aliases=no\n{listen}\
         mpath=\"/usr/lib/x86_64-linux-gnu/kamailio/modules/\"\nloadmodule \"pv.so\""
    )
}

/// The request route of a stateful proxy relaying each call to its Request-URI (tm, sl,
/// rr and siputils loaded): `before_relay` runs before a new call is relayed (an
/// `t_on_failure`, say).
pub fn proxy_route(before_relay: &str) -> String {
    format!(
        r#"request_route {{
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (has_totag()) {{
        # The ACK of a rejection ends its transaction here.
        if (is_method("ACK")) {{
            t_check_trans();
        }}
        loose_route();
        t_relay();
        exit;
    }}
    t_check_trans();
    record_route();
    {before_relay}
    t_relay();
}}
"#
    )
}
