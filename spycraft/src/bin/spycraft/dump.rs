// SPDX-License-Identifier: AGPL-3.0-or-later
//! `spycraft dump`: the SIP messages of one endpoint, call or user, in full.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use spycraft::capture::{FrameSource, LiveFilter, LiveSource};
use spycraft::filter::FilterConfig;
use spycraft::inspect::dump::{Collation, DumpedMessage, Selection};
use spycraft::inspect::write::{write_picked, write_picked_live, Inputs};
use spycraft::inspect::{each_message, each_message_of, ladder};
use spycraft::pipeline::{SeenMessage, SipPorts};
use spycraft::settings::Settings;

use crate::args::{DumpArgs, DumpFormat};
use crate::inspect::output_to;
use crate::outcome::damage_status;
use crate::stop::{self, STOP};

pub fn run(args: DumpArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let ports = settings.sip_ports();
    let collate_headers = &settings.sensor.collate_headers;
    let files = &args.files;
    let filter = args.filter.as_deref();
    let live = args.interface.is_some();
    let call_ids = if args.call_ids.is_empty() {
        None
    } else if live || files.iter().any(|f| f.as_os_str() == "-") {
        // A live capture or standard input cannot be read twice: no first pass to find the
        // collated legs.
        eprintln!("spycraft: reading once: collated legs of --call-id are not added");
        Some(args.call_ids.iter().cloned().collect())
    } else {
        let mut collation = Collation::default();
        each_message(files, filter, &ports, collate_headers, &mut |m| {
            collation.learn(m)
        })?;
        Some(collation.expand(&args.call_ids))
    };
    let selection = Selection {
        host: args.host,
        call_ids,
        user: args.user,
    };
    if let Some(path) = &args.write {
        let frames = match &args.interface {
            Some(interface) => write_picked_live(
                &mut live_source(interface, &ports)?,
                &ports,
                collate_headers,
                &mut |m| selection.matches(m),
                path,
            )?,
            None if files.iter().any(|f| f.as_os_str() == "-") => {
                anyhow::bail!("dump -w reads the captures twice: give files, not standard input")
            }
            None => {
                let inputs = Inputs {
                    files,
                    filter,
                    ports: &ports,
                    collation_headers: collate_headers,
                };
                write_picked(inputs, &mut |m| selection.matches(m), path)?
            }
        };
        eprintln!("spycraft: {frames} frames written to {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = output_to(args.output.as_deref())?;
    let mut kept = Vec::new();
    let mut failure = None;
    let mut shown = |m: &SeenMessage<'_, '_, '_>| {
        if failure.is_some() || !selection.matches(m) {
            return;
        }
        let message = DumpedMessage::of(m);
        let written = match args.format {
            DumpFormat::Text => out.write_all(message.to_text(selection.host.as_ref()).as_bytes()),
            DumpFormat::Json => serde_json::to_writer(&mut out, &message)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n")),
            DumpFormat::Html | DumpFormat::Svg => {
                kept.push(message);
                Ok(())
            }
        };
        // Live, each message is shown as it comes.
        let written = written.and_then(|()| if live { out.flush() } else { Ok(()) });
        if let Err(e) = written {
            failure = Some(e);
        }
    };
    let damage = match &args.interface {
        None => each_message(files, filter, &ports, collate_headers, &mut shown)?.1,
        Some(interface) => {
            let mut sources: Vec<Box<dyn FrameSource>> =
                vec![Box::new(live_source(interface, &ports)?)];
            each_message_of(&mut sources, &ports, collate_headers, &mut shown).1
        }
    };
    if let Some(e) = failure {
        return Err(e).context("writing the messages");
    }
    let title = args
        .call_ids
        .first()
        .cloned()
        .unwrap_or_else(|| "SIP messages".into());
    match args.format {
        DumpFormat::Html => out.write_all(ladder::html(&title, &kept).as_bytes())?,
        DumpFormat::Svg => out.write_all(ladder::svg(&kept).as_bytes())?,
        DumpFormat::Text | DumpFormat::Json => {}
    }
    out.flush().context("writing the messages")?;
    Ok(damage_status(damage))
}

/// A live capture for `dump -i`: whole frames, the filter made from the SIP ports, SIGINT
/// and SIGTERM ending it.
fn live_source(interface: &str, ports: &SipPorts) -> anyhow::Result<LiveSource> {
    let filter = FilterConfig::new(ports.ports.clone(), Vec::new())?;
    stop::install_handlers();
    let keep = LiveFilter {
        config: filter,
        pcap_expression: None,
    };
    Ok(LiveSource::open(interface, &keep, 65535, 32 << 20, &STOP)?)
}
