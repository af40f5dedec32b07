// SPDX-License-Identifier: AGPL-3.0-or-later
//! A rate deck, a capture of calls to numbers it prices, and the cost of records worked out
//! here, independently of spycraft's own accounting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::calls::pcap_of_calls_dialling;

/// (prefix, price per minute, minimum s, increment s)
pub const DECK: [(&str, &str, u64, u64); 3] = [
    ("44", "0.60", 60, 60),
    ("49", "0.05", 30, 6),
    ("4930", "0.012", 1, 1),
];

/// Writes the deck as CSV into `dir`.
pub fn write_deck(dir: &Path) -> PathBuf {
    let rates = dir.join("rates.csv");
    let mut deck = String::from("prefix,description,price_per_min,min_s,increment_s\n");
    for (prefix, price, min, inc) in DECK {
        deck.push_str(&format!("{prefix},dest {prefix},{price},{min},{inc}\n"));
    }
    std::fs::write(&rates, deck).expect("deck");
    rates
}

/// Writes a capture of `calls` answered calls into `dir`, a quarter each to numbers under
/// 4420, 4930, 4989 and 1555 (which the deck does not price).
pub fn write_priced_capture(dir: &Path, calls: u32) -> PathBuf {
    let capture = dir.join("calls.pcap");
    let caller: SocketAddr = "10.0.0.1:5060".parse().expect("address");
    let callee: SocketAddr = "10.0.0.2:5060".parse().expect("address");
    let numbers = ["4420", "4930", "4989", "1555"];
    let pcap = pcap_of_calls_dialling(calls, &|_| (caller, callee), &|n| {
        format!("{}{n:05}", numbers[n as usize % numbers.len()])
    });
    std::fs::write(&capture, pcap).expect("capture");
    capture
}

/// The cost of `records` by the deck, in millionths, and how many no prefix priced: the
/// longest prefix, whole seconds rounded up, the minimum then whole increments.
pub fn expected_cost(records: &[Value]) -> (i64, u64) {
    let mut micros: i64 = 0;
    let mut unrated = 0;
    for r in records {
        let to = r["to_user"].as_str().expect("a number");
        let Some((_, price, min, inc)) = DECK
            .iter()
            .filter(|(p, ..)| to.starts_with(p))
            .max_by_key(|(p, ..)| p.len())
        else {
            unrated += 1;
            continue;
        };
        let secs = r["billable_ms"].as_u64().expect("billable").div_ceil(1000);
        let billed = if secs <= *min {
            *min
        } else {
            min + (secs - min).div_ceil(*inc) * inc
        };
        let (whole, frac) = price.split_once('.').expect("a decimal");
        let per_minute = whole.parse::<i64>().expect("whole") * 1_000_000
            + format!("{frac:0<6}").parse::<i64>().expect("fraction");
        micros += (per_minute * billed as i64 + 30) / 60;
    }
    (micros, unrated)
}
