// SPDX-License-Identifier: AGPL-3.0-or-later
//! The HTTP endpoint of a run (`--http`): the monitor and record store the pipeline reports
//! to, and the server that shows them (metrics, the web API and pages).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use spycraft::http::auth::Access;
use spycraft::http::web::Web;
use spycraft::http::{web_routes, HttpServer};
use spycraft::monitor::{Monitor, Phase};
use spycraft::pipeline::{MessageTap, Observers, RunObserver};
use spycraft::settings::Settings;
use spycraft::store::history::History;
use spycraft::store::messages::CallMessages;
use spycraft::store::recent::RecentMessages;
use spycraft::store::{RecordStore, StoreObserver};

use crate::stop;

/// A run's monitor, its records and the server showing them.
pub struct Service {
    pub monitor: Arc<Monitor>,
    observer: Arc<dyn RunObserver>,
    /// Keeps the messages of recent calls, on a live capture.
    recent: Option<Arc<RecentMessages>>,
    /// Where it serves, for messages: `https://127.0.0.1:8443`.
    url: String,
    _server: HttpServer,
}

/// Where a run's records come from, for what the web API can offer beyond them.
pub enum Source<'a> {
    /// A live capture: frames are gone once seen.
    Live,
    /// Capture files, which can be read again for a call's messages and frames.
    Files {
        files: &'a [PathBuf],
        filter: Option<&'a str>,
    },
    /// The records every sensor wrote to the database of `--postgres`.
    History,
}

impl Service {
    /// Starts the server when `--http` (or `[http] listen`) asks for one.
    pub fn start(settings: &Settings, source: Source<'_>) -> anyhow::Result<Option<Self>> {
        let Some(addr) = settings.http.listen else {
            return Ok(None);
        };
        let http = &settings.http;
        let quiet = settings.records.quiet;
        let mut access = match &http.token_file {
            Some(path) => Access::from_token_file(path, !quiet)?,
            None => Access::open(!quiet),
        };
        if let Some(path) = &http.users_file {
            access = access.with_users_file(path)?;
        }
        if !access.requires_token() && !addr.ip().is_loopback() {
            anyhow::bail!(
                "--http {addr} is reachable beyond this machine: give --http-token-file \
                 (bearer tokens, one a line) or --http-users (argon2 hashes), or listen on \
                 127.0.0.1"
            );
        }
        let tls = match (&http.cert, &http.key) {
            (Some(cert), Some(key)) => Some(spycraft::http::tls::server_config(cert, key)?),
            (None, None) => None,
            _ => anyhow::bail!("[http] cert and key go together"),
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let peers = settings.peer_groups().context("[[peer_group]]")?;
        let live = matches!(source, Source::Live);
        let monitor = Arc::new(Monitor::new(live, peers.clone()));
        let store = Arc::new(RecordStore::new(http.keep_records));
        let mut web = Web::new(
            monitor.clone(),
            store.clone(),
            peers,
            settings.query_timeout(),
        );
        web.deck = settings.rate_deck()?.map(Arc::new);
        if let Source::Files { files, filter } = source {
            let from_files = spycraft::store::messages::CaptureFiles::new(
                files.to_vec(),
                filter.map(str::to_owned),
                settings.sip_ports(),
                settings.sensor.collate_headers.clone(),
            );
            // Standard input cannot be read again.
            if !files.iter().any(|f| f.as_os_str() == "-") {
                web.messages = Some(Arc::new(from_files) as Arc<dyn CallMessages>);
            }
        }
        // A capture's frames are gone once seen: the messages of its recent calls are kept.
        let recent = (live && http.keep_messages_mb > 0)
            .then(|| Arc::new(RecentMessages::new(http.keep_messages_mb << 20)));
        if let Some(recent) = &recent {
            web.messages = Some(recent.clone() as Arc<dyn CallMessages>);
            web.recent = Some(recent.clone());
        }
        if let Source::History = source {
            let config = settings.postgres(false)?.context("--postgres")?;
            let history = History::new(config.target, settings.query_timeout());
            if !quiet {
                eprintln!(
                    "spycraft: showing the records in PostgreSQL at {}",
                    history.describe()
                );
            }
            web.history = Some(Arc::new(history));
        }
        web.security = access.security();
        let server = HttpServer::start(addr, web_routes(Arc::new(web), access), tls)?;
        if !quiet {
            eprintln!(
                "spycraft: serving /metrics, /healthz, /readyz, /api/v1 and the web pages on {scheme}://{}",
                server.local_addr()
            );
        }
        let mut observers: Vec<Arc<dyn RunObserver>> = vec![monitor.clone()];
        // `--keep-records 0`: metrics only, no copy of each record.
        if http.keep_records > 0 {
            observers.push(Arc::new(StoreObserver::new(store)));
        }
        let observer = Arc::new(Observers(observers));
        Ok(Some(Self {
            monitor,
            observer,
            recent,
            url: format!("{scheme}://{}", server.local_addr()),
            _server: server,
        }))
    }

    /// What the pipeline reports to: the monitor and the record store.
    pub fn observer(&self) -> Arc<dyn RunObserver> {
        self.observer.clone()
    }

    /// What the pipeline shows its messages to, if anything here keeps them.
    pub fn tap(&self) -> Option<Arc<dyn MessageTap>> {
        self.recent
            .clone()
            .map(|recent| recent as Arc<dyn MessageTap>)
    }

    /// Keeps serving for `secs` after the run (`None`: until SIGINT or SIGTERM).
    pub fn linger(&self, secs: Option<u64>) {
        self.monitor.set_phase(Phase::Ended);
        if secs == Some(0) {
            return;
        }
        let until = secs.map(|s| Instant::now() + Duration::from_secs(s));
        match secs {
            Some(secs) => eprintln!(
                "spycraft: the input has ended; still serving on {} for {secs} s",
                self.url
            ),
            None => eprintln!(
                "spycraft: the input has ended; serving on {} until stopped",
                self.url
            ),
        }
        while until.is_none_or(|u| Instant::now() < u) && !stop::requested() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
