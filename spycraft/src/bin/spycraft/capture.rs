// SPDX-License-Identifier: AGPL-3.0-or-later
//! `spycraft capture`: the live sensor.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use spycraft::capture::{
    CaptureCounts, CaptureFormat, CaptureMode, CaptureWriter, FilterSlot, FrameSource, LiveFilter,
    LiveSource, MergedSource, Rotation, TeeSource, XdpAttach,
};
use spycraft::filter::FilterConfig;
use spycraft::hep::HepListener;
use spycraft::packet::LinkType;
use spycraft::pipeline::{ChangeSlot, Progress, SipPorts};
use spycraft::privilege::{drop_privileges, needed_after_attach, Keep};
use spycraft::settings::{CaptureSettings, Layer, Settings};
use spycraft_common::XdpAction;

use crate::notify::Notifier;
use crate::outcome::Usage;
use crate::record::{record_run, Live, Run, Watchers};
use crate::reload::Reloader;
use crate::service::{Service, Source};
use crate::stop::{self, STOP};

/// Captures on the interfaces `settings` name, all into one call tracker; `config` and
/// `flags` are read again on SIGHUP.
pub fn run(settings: &Settings, config: Option<PathBuf>, flags: Layer) -> anyhow::Result<ExitCode> {
    let c = &settings.capture;
    if c.interfaces.is_empty() && settings.hep.listen.is_empty() {
        return Err(Usage(
            "capture needs an interface: -i IFACE (repeatable), or interfaces in [capture], \
             or --hep-listen URL"
                .into(),
        )
        .into());
    }
    let modes: Vec<CaptureMode> = c
        .interfaces
        .iter()
        .map(|i| i.mode.unwrap_or(c.mode))
        .collect();
    check_mode_settings(c, &modes)?;
    let filter = settings.capture_filter()?;
    stop::install_handlers();
    let mut opened = Vec::with_capacity(modes.len());
    for (interface, mode) in c.interfaces.iter().zip(&modes) {
        let live = open_live(&interface.name, *mode, c, &filter)?;
        if !settings.records.quiet {
            eprintln!(
                "spycraft: capturing on {} ({})",
                interface.name, live.description
            );
        }
        opened.push(live);
    }
    let mut listeners = Vec::new();
    for config in settings.hep_listeners().context("--hep-password-file")? {
        let endpoint = config.endpoint.to_string();
        let listener = HepListener::open(config, &STOP)?;
        if !settings.records.quiet {
            eprintln!(
                "spycraft: listening for HEP on {} ({endpoint})",
                listener.local_addr(),
            );
        }
        listeners.push((format!("hep {endpoint}"), listener));
    }
    // Attached and open: nothing from here needs privilege. Dropped before any thread starts
    // (the HTTP server, the readers of several interfaces, PostgreSQL's delivery), since
    // capabilities belong to each thread: every later thread starts without them.
    let mut keep = Keep::default();
    for mode in &modes {
        for needed in needed_after_attach(*mode).capabilities {
            if !keep.capabilities.contains(&needed) {
                keep.capabilities.push(needed);
            }
        }
    }
    let dropped = drop_privileges(c.user.as_deref(), &keep)?;
    if !settings.records.quiet {
        eprintln!("spycraft: {dropped}");
    }
    let service = Service::start(settings, Source::Live)?;
    if let Some(service) = &service {
        for (interface, live) in c.interfaces.iter().zip(&opened) {
            service
                .monitor
                .add_capture(&interface.name, live.probe.clone());
        }
        for (name, listener) in &listeners {
            service.monitor.add_capture(name, listener.counts());
        }
    }
    let changes = Arc::new(ChangeSlot::default());
    let mut reloader = Reloader {
        path: config,
        flags,
        current: settings.clone(),
        filters: opened.iter().map(|o| o.filter_slot.clone()).collect(),
        changes: changes.clone(),
        monitor: service.as_ref().map(|s| s.monitor.clone()),
    };
    stop::install_reload_handler();
    let probes: Vec<(String, Arc<dyn CaptureCounts>)> = c
        .interfaces
        .iter()
        .zip(&opened)
        .map(|(i, o)| (i.name.clone(), o.probe.clone()))
        .chain(
            listeners
                .iter()
                .map(|(name, l)| (name.clone(), l.counts() as Arc<dyn CaptureCounts>)),
        )
        .collect();
    let counters = move || {
        let several = probes.len() > 1;
        let each: Vec<String> = probes
            .iter()
            .map(|(name, probe)| {
                if several {
                    format!("{name}: {}", probe.one_line())
                } else {
                    probe.one_line()
                }
            })
            .collect();
        each.join("; ")
    };
    // HEP arrives as the Ethernet frames a capture of it would hold.
    let link = opened.first().map_or(LinkType::Ethernet, |o| o.link);
    let several = opened.len() + listeners.len() > 1;
    if c.write.is_some() && several && !c.pcapng {
        return Err(Usage(
            "-w with several interfaces needs --pcapng: classic pcap cannot say which \
             interface each frame came from"
                .into(),
        )
        .into());
    }
    let described: Vec<(String, LinkType)> = c
        .interfaces
        .iter()
        .zip(&opened)
        .map(|(i, o)| (i.name.clone(), o.link))
        .chain(
            listeners
                .iter()
                .map(|(name, _)| (name.clone(), LinkType::Ethernet)),
        )
        .collect();
    let mut all: Vec<(Box<dyn FrameSource + Send>, Arc<dyn CaptureCounts>)> = opened
        .into_iter()
        .map(|o| (o.source, o.probe))
        .chain(listeners.into_iter().map(|(_, l)| {
            let counts = l.counts() as Arc<dyn CaptureCounts>;
            (Box::new(l) as Box<dyn FrameSource + Send>, counts)
        }))
        .collect();
    let source: Box<dyn FrameSource> = if several {
        Box::new(MergedSource::start(all)?)
    } else {
        all.remove(0).0
    };
    let mut sources: Vec<Box<dyn FrameSource>> = match &c.write {
        None => vec![source],
        Some(path) => {
            let rotation = Rotation {
                max_bytes: c.rotate_mb.map(|mb| (mb * 1e6).max(1.0) as u64),
                every_secs: c.rotate_secs.filter(|&s| s > 0),
                files: c.ring_files.filter(|&n| n > 0),
            };
            let format = if c.pcapng {
                CaptureFormat::Pcapng
            } else {
                CaptureFormat::Pcap
            };
            let snap_len = modes.iter().map(|m| c.snap_len_for(*m)).max().unwrap_or(0);
            let writer = if format == CaptureFormat::Pcapng {
                CaptureWriter::create_pcapng_of(path, rotation, described, snap_len)
            } else {
                CaptureWriter::create(path, format, rotation, link, snap_len)
            }
            .with_context(|| format!("cannot create {}", path.display()))?;
            vec![Box::new(TeeSource::new(source, writer))]
        }
    };
    let mut last_line = Instant::now();
    let verbose = c.verbose > 0;
    let written = Arc::new(AtomicU64::new(0));
    let records = written.clone();
    let notifier = Notifier::from_env();
    let mut progress = |p: &Progress| {
        if let Some(n) = &notifier {
            n.watchdog();
        }
        if stop::RELOAD.swap(false, Ordering::AcqRel) {
            reloader.reload();
        }
        if verbose && last_line.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "spycraft: {}; parsed {} SIP messages, {} parse errors, {} calls recorded",
                counters(),
                p.sip_messages,
                p.parse_errors,
                records.load(Ordering::Relaxed)
            );
            last_line = Instant::now();
        }
    };
    // SIP that agents deliver over HEP is taken whatever its ports: HEP says it is SIP.
    let ports = SipPorts {
        ports: filter.ports().to_vec(),
        detect_elsewhere: false,
    };
    let code = record_run(
        settings,
        Run::Capture,
        ports,
        &mut sources,
        &mut progress,
        Some(Live {
            written,
            dropped,
            notifier: notifier.as_ref(),
            changes,
        }),
        Watchers {
            service: service.as_ref(),
            observer: None,
        },
    );
    eprintln!("spycraft: {}", counters());
    code
}

/// Settings that belong to another mode, or to a capture file not asked for, are refused.
fn check_mode_settings(c: &CaptureSettings, modes: &[CaptureMode]) -> Result<(), Usage> {
    let usage = |text: &str| Err(Usage(text.to_owned()));
    if !modes.contains(&CaptureMode::Xdp)
        && (c.xdp_action != XdpAction::default() || c.xdp_mode != XdpAttach::default())
    {
        return usage("--xdp-action and --xdp-mode apply to --mode xdp only");
    }
    if !modes.contains(&CaptureMode::Pcap) && c.pcap_filter.is_some() {
        return usage("--pcap-filter applies to --mode pcap only");
    }
    let rotates = c.rotate_mb.is_some() || c.rotate_secs.is_some() || c.ring_files.is_some();
    if c.write.is_none() && (c.pcapng || rotates) {
        return usage("--pcapng, -C, -G and -W apply to the file of -w only");
    }
    Ok(())
}

/// A live source, opened in the mode asked for.
struct OpenedLive {
    source: Box<dyn FrameSource + Send>,
    link: LinkType,
    /// How frames are picked, for the start-up line.
    description: String,
    /// The source's counters, readable while it runs (the status line, /metrics).
    probe: Arc<dyn CaptureCounts>,
    /// Where a reload leaves a new filter.
    filter_slot: Arc<FilterSlot>,
}

fn open_live(
    interface: &str,
    mode: CaptureMode,
    c: &CaptureSettings,
    filter: &FilterConfig,
) -> anyhow::Result<OpenedLive> {
    if mode != CaptureMode::Pcap {
        return open_kernel(interface, mode, c, filter);
    }
    let keep = LiveFilter {
        config: filter.clone(),
        pcap_expression: c.pcap_filter.clone(),
    };
    let source = LiveSource::open(
        interface,
        &keep,
        c.snap_len_for(CaptureMode::Pcap),
        c.buffer_mb.saturating_mul(1 << 20),
        &STOP,
    )?;
    let live = source.counters();
    let expression = keep.expression_on(source.link_type());
    Ok(OpenedLive {
        link: source.link_type(),
        description: if expression.is_empty() {
            "libpcap, no filter".to_owned()
        } else {
            format!("libpcap, filter: {expression}")
        },
        probe: live,
        filter_slot: source.filter_slot(),
        source: Box::new(source),
    })
}

#[cfg(feature = "ebpf")]
fn open_kernel(
    interface: &str,
    mode: CaptureMode,
    c: &CaptureSettings,
    filter: &FilterConfig,
) -> anyhow::Result<OpenedLive> {
    use spycraft::capture::kernel::{KernelMode, KernelOptions, KernelSource};
    use spycraft_common::MAX_KERNEL_SNAP_LEN;
    let snap_len = c.snap_len_for(mode);
    if snap_len > MAX_KERNEL_SNAP_LEN {
        anyhow::bail!(
            "--snap-len {snap_len}: the kernel programs copy at most {MAX_KERNEL_SNAP_LEN} bytes of a frame"
        );
    }
    let options = KernelOptions {
        mode: match mode {
            CaptureMode::Xdp => KernelMode::Xdp(c.xdp_mode),
            _ => KernelMode::Socket,
        },
        snap_len,
        ring_bytes: c.ring_mb.clamp(1, 2048).saturating_mul(1 << 20),
        log_frames: c.verbose >= 2,
        xdp_action: c.xdp_action,
    };
    let source = KernelSource::open(interface, filter, options, &STOP)?;
    Ok(OpenedLive {
        link: source.link_type(),
        description: format!("{}; ports {}", source.attachment(), filter.ports_text()),
        probe: source.counters(),
        filter_slot: source.filter_slot(),
        source: Box::new(source),
    })
}

#[cfg(not(feature = "ebpf"))]
fn open_kernel(
    _: &str,
    _: CaptureMode,
    _: &CaptureSettings,
    _: &FilterConfig,
) -> anyhow::Result<OpenedLive> {
    anyhow::bail!(
        "this spycraft was built without its kernel programs (cargo feature `ebpf`); use --mode pcap"
    )
}
