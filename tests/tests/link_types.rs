// SPDX-License-Identifier: AGPL-3.0-or-later
//! The same call captured with every link-layer header spycraft reads gives the same record.

use spycraft_tests::{analyze, read_pcap, scratch_dir, workspace_root, write_pcap, PcapFrame};

/// Ethernet frames of a bundled call, re-wrapped by `wrap` and written with link type `link`.
fn rewrap(name: &str, link: u32, wrap: impl Fn(&[u8]) -> Vec<u8>) -> std::path::PathBuf {
    let source = workspace_root().join("pcaps/answered-caller-bye/capture.pcap");
    let (source_link, frames) = read_pcap(&source);
    assert_eq!(source_link, 1, "bundled captures are Ethernet");
    let frames: Vec<PcapFrame> = frames
        .into_iter()
        .map(|f| PcapFrame {
            data: wrap(&f.data[14..]),
            ..f
        })
        .collect();
    let path = scratch_dir(&format!("link-{name}")).join("capture.pcap");
    write_pcap(&path, link, &frames);
    path
}

/// An Ethernet frame around `ip` with the given (TPID, VLAN id) tags, outermost first.
fn ethernet(tags: &[(u16, u16)], ip: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    for &(tpid, vid) in tags {
        out.extend_from_slice(&tpid.to_be_bytes());
        out.extend_from_slice(&vid.to_be_bytes());
    }
    out.extend_from_slice(&[0x08, 0x00]);
    out.extend_from_slice(ip);
    out
}

#[test]
fn every_link_type_yields_the_same_record() {
    let original = workspace_root().join("pcaps/answered-caller-bye/capture.pcap");
    let (reference, _) = analyze(&[original]);
    assert_eq!(reference.len(), 1);
    let reference = &reference[0];

    type Wrap = Box<dyn Fn(&[u8]) -> Vec<u8>>;
    let variants: Vec<(&str, u32, Option<u16>, Wrap)> = vec![
        (
            "null-le",
            0,
            None,
            Box::new(|ip| [&2u32.to_le_bytes()[..], ip].concat()),
        ),
        (
            "null-be",
            0,
            None,
            Box::new(|ip| [&2u32.to_be_bytes()[..], ip].concat()),
        ),
        (
            "loop",
            108,
            None,
            Box::new(|ip| [&2u32.to_be_bytes()[..], ip].concat()),
        ),
        ("raw", 101, None, Box::new(|ip| ip.to_vec())),
        ("ipv4", 228, None, Box::new(|ip| ip.to_vec())),
        (
            "sll",
            113,
            None,
            Box::new(|ip| {
                [
                    &[0, 4, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00][..],
                    ip,
                ]
                .concat()
            }),
        ),
        (
            "sll2",
            276,
            None,
            Box::new(|ip| {
                [
                    &[
                        0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 4, 6, 0, 0, 0, 0, 0, 0, 0, 0,
                    ][..],
                    ip,
                ]
                .concat()
            }),
        ),
        (
            "vlan",
            1,
            Some(42),
            Box::new(|ip| ethernet(&[(0x8100, 42)], ip)),
        ),
        (
            "qinq",
            1,
            Some(100),
            Box::new(|ip| ethernet(&[(0x88a8, 100), (0x8100, 200)], ip)),
        ),
    ];
    for (name, link, vlan, wrap) in variants {
        let path = rewrap(name, link, wrap);
        let (records, summary) = analyze(&[path]);
        assert_eq!(records.len(), 1, "{name}: {}", summary.one_line());
        let mut expected = reference.clone();
        expected.vlan = vlan;
        assert_eq!(records[0], expected, "{name}");
    }
}
