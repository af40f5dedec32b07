// SPDX-License-Identifier: AGPL-3.0-or-later
//! Network namespaces a test makes for its own hosts, removed when it ends.

use std::process::Command;

/// Network namespaces made for one test, removed when it ends.
pub struct Namespaces(Vec<String>);

impl Namespaces {
    pub fn new(names: &[&str]) -> Self {
        let names: Vec<String> = names
            .iter()
            .map(|n| format!("{n}-{}", std::process::id()))
            .collect();
        for ns in &names {
            // Left over from a run that was killed: gone, or never there (said nothing).
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(std::process::Stdio::null())
                .status();
            super::process::ip(&["netns", "add", ns]);
            super::process::ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        Self(names)
    }

    pub fn name(&self, i: usize) -> &str {
        &self.0[i]
    }

    /// `program` run inside namespace `i`.
    pub fn exec(&self, i: usize, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.name(i), program]);
        cmd
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
