// SPDX-License-Identifier: AGPL-3.0-or-later
//! `spycraft filter`: the capture filter the settings make.

use std::process::ExitCode;

use spycraft::settings::Settings;

use crate::args::FilterArgs;

pub fn run(args: &FilterArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let filter = settings.capture_filter()?;
    if args.expression {
        println!("{}", filter.pcap_expression());
    } else {
        println!("pcap-filter expression (capture --mode pcap; also for tcpdump -i IFACE '...'):");
        println!("  {}", filter.pcap_expression());
        println!();
        println!("kernel filter maps (capture --mode xdp|socket):");
        print!("{}", filter.describe_maps());
    }
    Ok(ExitCode::SUCCESS)
}
