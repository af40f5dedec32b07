// SPDX-License-Identifier: AGPL-3.0-or-later
//! `spycraft serve`: captures analysed into memory, shown by the web pages and API until
//! SIGINT or SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context;

use spycraft::monitor::Phase;
use spycraft::settings::Settings;

use crate::analyze::open_files;
use crate::args::ServeArgs;
use crate::outcome::Usage;
use crate::record::{record_run, Run, Watchers};
use crate::service::{Service, Source};
use crate::stop;

/// Where `serve` listens when not told: this machine only.
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

pub fn run(args: ServeArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let mut settings = settings.clone();
    settings.http.listen.get_or_insert(DEFAULT_LISTEN);
    stop::install_handlers();
    if settings.postgres.url.is_some() {
        return serve_history(&settings);
    }
    let files = &args.files;
    if files.iter().any(|f| f.as_os_str() == "-") {
        return Err(Usage(
            "serve reads its captures again for call flows: give files, not standard input".into(),
        )
        .into());
    }
    let mut sources = open_files(files, args.filter.as_deref())?;
    let source = Source::Files {
        files,
        filter: args.filter.as_deref(),
    };
    let service = Service::start(&settings, source)?;
    record_run(
        &settings,
        Run::Serve,
        settings.sip_ports(),
        &mut sources,
        &mut |_| {},
        None,
        Watchers {
            service: service.as_ref(),
            observer: None,
        },
    )
}

/// Serves the records in the database until SIGINT or SIGTERM.
fn serve_history(settings: &Settings) -> anyhow::Result<ExitCode> {
    let service = Service::start(settings, Source::History)?.context("--http")?;
    // Ready while it serves: there is no input to end.
    service.monitor.set_phase(Phase::Running);
    while !stop::requested() {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(ExitCode::SUCCESS)
}
