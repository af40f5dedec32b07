// SPDX-License-Identifier: AGPL-3.0-or-later
//! The HTTP endpoint of a run (`--http`): the monitor the pipeline reports to, and the
//! server that shows it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use spycraft::http::{routes, HttpServer};
use spycraft::monitor::{Monitor, Phase};
use spycraft::settings::Settings;

use crate::stop;

/// A run's monitor and the server showing it.
pub struct Service {
    pub monitor: Arc<Monitor>,
    server: HttpServer,
}

impl Service {
    /// Starts the server when `--http` (or `[http] listen`) asks for one. `live`: a capture,
    /// whose ratio windows end at the wall clock.
    pub fn start(settings: &Settings, live: bool) -> anyhow::Result<Option<Self>> {
        let Some(addr) = settings.http.listen else {
            return Ok(None);
        };
        let peers = settings.peer_groups().context("[[peer_group]]")?;
        let monitor = Arc::new(Monitor::new(live, peers));
        let server = HttpServer::start(addr, routes(monitor.clone()))?;
        if !settings.records.quiet {
            eprintln!(
                "spycraft: serving /metrics, /healthz and /readyz on http://{}",
                server.local_addr()
            );
        }
        Ok(Some(Self { monitor, server }))
    }

    /// Keeps serving for `secs` after the run, or until SIGINT or SIGTERM.
    pub fn linger(&self, secs: u64) {
        self.monitor.set_phase(Phase::Ended);
        if secs == 0 {
            return;
        }
        eprintln!(
            "spycraft: the input has ended; still serving on http://{} for {secs} s",
            self.server.local_addr()
        );
        let until = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < until && !stop::requested() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
