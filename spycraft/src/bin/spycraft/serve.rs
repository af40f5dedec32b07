// SPDX-License-Identifier: AGPL-3.0-or-later
//! `spycraft serve`: captures analysed into memory, shown by the web pages and API until
//! SIGINT or SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use spycraft::settings::Settings;

use crate::analyze::open_files;
use crate::args::ServeArgs;
use crate::outcome::Usage;
use crate::record::{record_run, Run};
use crate::service::{Service, Source};
use crate::stop;

/// Where `serve` listens when not told: this machine only.
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

pub fn run(args: ServeArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let files = &args.input.files;
    if files.iter().any(|f| f.as_os_str() == "-") {
        return Err(Usage(
            "serve reads its captures again for call flows: give files, not standard input".into(),
        )
        .into());
    }
    let mut settings = settings.clone();
    settings.http.listen.get_or_insert(DEFAULT_LISTEN);
    let mut sources = open_files(files, args.input.filter.as_deref())?;
    stop::install_handlers();
    let source = Source::Files {
        files,
        filter: args.input.filter.as_deref(),
    };
    let service = Service::start(&settings, source)?;
    record_run(
        &settings,
        Run::Serve,
        settings.sip_ports(),
        &mut sources,
        &mut |_| {},
        None,
        service.as_ref(),
    )
}
