// SPDX-License-Identifier: AGPL-3.0-or-later
//! The web API and pages: `spycraft serve` on the bundled captures and on made ones, checked
//! against what `analyze` and `dump` say of the same files; accounting against a sum worked
//! out here; the live view following calls sent over loopback; and who may ask.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::calls::send_calls;
use support::deck::{expected_cost, write_deck, write_priced_capture};
use support::http::{get, get_raw, start_sensor as sensor};
use support::process::{installed, may_capture};
use support::serving::{analyzed, bundled, json, serve};
use support::{scratch, spycraft, text, utf8};

/// Every page of a search, following the cursors; the ids in the order given.
fn every_page(addr: SocketAddr, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = json(addr, &format!("/api/v1/calls?{query}&limit=7{cursor}"));
        for call in page["calls"].as_array().expect("calls") {
            ids.push(call["id"].as_str().expect("id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return ids,
        }
    }
}

#[test]
fn search_finds_what_analyze_writes_and_pages_through_it_once() {
    let files = bundled();
    let records = analyzed(&files);
    let (_serve, _said, addr) = serve(&files, &[]);

    let all = every_page(addr, "sort=invite_at");
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "no record on two pages");
    let expected: BTreeSet<String> = records
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(
        unique.into_iter().cloned().collect::<BTreeSet<_>>(),
        expected
    );

    // A number, user or URI prefix, as the search form takes it: alice.
    let starts = |r: &Value, field: &str| {
        r[field]
            .as_str()
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("alice"))
    };
    let by_alice = records
        .iter()
        .filter(|r| {
            ["from_user", "to_user", "from_uri", "to_uri", "request_uri"]
                .iter()
                .any(|f| starts(r, f))
        })
        .count();
    assert!(by_alice > 0, "the bundled captures have calls from alice");
    let page = json(addr, "/api/v1/calls?q=alice&limit=1");
    assert_eq!(page["total"], by_alice);
    let answered = records
        .iter()
        .filter(|r| r["disposition"] == "answered")
        .count();
    assert_eq!(
        json(addr, "/api/v1/calls?disposition=answered")["total"],
        answered
    );
    // A wildcard across the URI.
    let wild = json(addr, "/api/v1/calls?q=sip:*@127.0.0.1*&limit=1")["total"].as_u64();
    assert!(wild.is_some_and(|n| n > 0));

    // CSV: a header and the same rows.
    let (status, head, body) = get_raw(
        addr,
        "/api/v1/calls?disposition=answered&format=csv&limit=10000",
        &[],
    );
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: text/csv"));
    assert_eq!(String::from_utf8_lossy(&body).lines().count(), answered + 1);

    // The search page shows the same count.
    let (status, html) = get(addr, "/calls?q=alice");
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("<span id=\"total\">{by_alice}</span>")),
        "{html}"
    );

    // Wrong parameters are named, with 400.
    for bad in [
        "limit=10001",
        "from=yesterday",
        "disposition=maybe",
        "sort=pdd",
        "cursor=x",
    ] {
        let (status, body) = get(addr, &format!("/api/v1/calls?{bad}"));
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body.contains(bad.split('=').next().expect("name")),
            "{body}"
        );
    }
}

#[test]
fn a_call_page_has_one_arrow_per_message_that_dump_lists() {
    let files = bundled();
    let b2bua: Vec<PathBuf> = files
        .iter()
        .filter(|f| f.to_string_lossy().contains("b2bua"))
        .cloned()
        .collect();
    assert_eq!(b2bua.len(), 2, "the two legs' captures");
    let (_serve, _said, addr) = serve(&b2bua, &[]);
    let page = json(addr, "/api/v1/calls?sort=invite_at");
    let first = &page["calls"][0];
    let id = first["id"].as_str().expect("id");
    let call_id = first["call_id"].as_str().expect("call id");

    let detail = json(addr, &format!("/api/v1/calls/{id}"));
    assert_eq!(
        detail["legs"].as_array().map(Vec::len),
        Some(2),
        "both legs of the B2BUA call"
    );

    let mut args = vec!["dump", "--format", "json", "--call-id", call_id];
    args.extend(b2bua.iter().map(|f| utf8(f)));
    let dumped = spycraft(&args);
    assert!(dumped.status.success());
    let messages = text(&dumped.stdout).lines().count();
    assert!(messages >= 6, "{messages}");

    let listed = json(addr, &format!("/api/v1/calls/{id}/messages"));
    assert_eq!(listed.as_array().map(Vec::len), Some(messages));
    let (status, svg) = get(addr, &format!("/api/v1/calls/{id}/flow.svg"));
    assert_eq!(status, 200);
    assert_eq!(svg.matches("marker-end=\"url(#head)\"").count(), messages);

    let (status, html) = get(addr, &format!("/calls/{id}"));
    assert_eq!(status, 200);
    assert!(html.contains(id) && html.contains("flow.svg"));

    let (status, _, pcap) = get_raw(addr, &format!("/api/v1/calls/{id}/pcap"), &[]);
    assert_eq!(status, 200);
    let magic = u32::from_le_bytes(pcap[..4].try_into().expect("four bytes"));
    assert!(
        [0xa1b2_c3d4, 0xa1b2_3c4d].contains(&magic),
        "a pcap: {magic:x}"
    );
    let written = scratch("web-call-pcap").join("call.pcap");
    std::fs::write(&written, &pcap).expect("written");
    let again = spycraft(&["dump", "--format", "json", utf8(&written)]);
    assert_eq!(
        text(&again.stdout).lines().count(),
        messages,
        "the pcap holds every message"
    );

    let (status, _) = get(addr, "/api/v1/calls/00000000-0000-0000-0000-000000000000");
    assert_eq!(status, 404);
}

#[test]
fn accounting_totals_equal_the_records_priced_by_the_deck() {
    let dir = scratch("web-accounting");
    let capture = write_priced_capture(&dir, 400);
    let rates = write_deck(&dir);
    let files = [capture];
    let records = analyzed(&files);
    let (_serve, _said, addr) = serve(&files, &["--rates", utf8(&rates)]);

    let (expected_micros, unrated) = expected_cost(&records);
    assert_eq!(unrated, 100, "the 1555 numbers");
    let report = json(addr, "/api/v1/accounting?by=destination");
    let total = &report["total"];
    assert_eq!(total["calls"], 400);
    assert_eq!(total["unrated"], unrated);
    let cost = total["cost"].as_f64().expect("a cost");
    assert_eq!((cost * 1e6).round() as i64, expected_micros);
    let rows: Vec<&str> = report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["key"].as_str().expect("key"))
        .collect();
    assert_eq!(rows, ["44", "49", "4930", "unrated"]);

    // Each record carries its prefix and cost.
    let call = json(addr, "/api/v1/calls?q=4930&limit=1");
    assert_eq!(call["calls"][0]["rated_prefix"], "4930");
    let (status, _, csv) = get_raw(addr, "/api/v1/calls?q=4930&limit=1&format=csv", &[]);
    assert_eq!(status, 200);
    let csv = String::from_utf8_lossy(&csv).into_owned();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].ends_with(",rated_prefix,cost"), "{}", lines[0]);
    let one = call["calls"][0]["cost"].as_f64().expect("a cost");
    assert!(lines[1].ends_with(&format!(",4930,{one}")), "{}", lines[1]);

    // The page shows the same total, and its CSV ends with it.
    let (status, html) = get(addr, "/accounting?by=destination");
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("<td class=\"cost\">{cost}</td>")),
        "{html}"
    );
    let (status, _, csv) = get_raw(addr, "/api/v1/accounting?by=destination&format=csv", &[]);
    assert_eq!(status, 200);
    let csv = String::from_utf8_lossy(&csv).into_owned();
    let last = csv.lines().last().expect("the total");
    assert!(
        last.starts_with("all,,400,") && last.contains(&cost.to_string()),
        "{last}"
    );
}

#[test]
fn the_api_is_described_and_a_slow_search_says_so() {
    let files = bundled();
    let (_serve, _said, addr) = serve(&files[..1], &["--query-timeout", "0"]);
    let doc = json(addr, "/api/v1/openapi.json");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for path in [
        "/api/v1/calls",
        "/api/v1/calls/{id}",
        "/api/v1/live",
        "/api/v1/live/events",
        "/api/v1/stats",
        "/api/v1/accounting",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} is described");
    }
    // Past its time a search answers 504 with why, never an empty 200.
    let (status, body) = get(addr, "/api/v1/calls");
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("longer than"), "{body}");
    let long = "q=".to_owned() + &"1".repeat(5000);
    assert_eq!(get(addr, &format!("/api/v1/calls?{long}")).0, 414);
}

/// schemathesis as `cargo xtask test` installs it (a virtual environment under `target/`).
fn schemathesis() -> Option<PathBuf> {
    let st = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/schemathesis/bin/st");
    installed(
        "schemathesis",
        "PyPI schemathesis, installed by cargo xtask test",
        std::fs::metadata(&st).map(|_| st),
    )
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_its_schema() {
    let Some(st) = schemathesis() else {
        return;
    };
    let dir = scratch("web-schemathesis");
    let tokens = dir.join("tokens");
    let token = "schemathesis-0123456789abcdef";
    std::fs::write(&tokens, format!("{token}\n")).expect("tokens");
    let rates = write_deck(&dir);
    let (_serve, _said, addr) = serve(
        &bundled(),
        &["--http-token-file", utf8(&tokens), "--rates", utf8(&rates)],
    );
    let bearer = format!("Authorization: Bearer {token}");
    // The document says what this server asks for.
    let (status, _, doc) = get_raw(addr, "/api/v1/openapi.json", &[&bearer]);
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_slice(&doc).expect("a document");
    assert!(
        doc["components"]["securitySchemes"]["bearer"].is_object(),
        "{doc}"
    );
    assert!(doc["paths"]["/api/v1/calls"]["get"]["responses"]["401"].is_object());

    // Every check but the one that wants every value its patterns allow accepted (a `from`
    // that is a string but not a time is refused, rightly). The event stream never ends,
    // so it is left out; the live view test reads it.
    let out = Command::new(st)
        .current_dir(&dir)
        .args(["run", &format!("http://{addr}/api/v1/openapi.json")])
        .args(["-H", &bearer])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--max-examples", "40", "--seed", "20261203"])
        .args(["--exclude-path", "/api/v1/live/events"])
        .output()
        .expect("schemathesis runs");
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(said.contains(" passed"), "{said}");
}

#[test]
fn beyond_loopback_it_needs_tokens_and_never_logs_them() {
    let files = bundled();
    let dir = scratch("web-tokens");
    // Bound beyond loopback without credentials: refused before it listens.
    let out = spycraft(&["serve", "--http", "0.0.0.0:0", utf8(&files[0])]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--http-token-file"),
        "{}",
        text(&out.stderr)
    );

    let token = "k3yb0ard-cat-walks-0ver-the-desk";
    let tokens = dir.join("tokens");
    std::fs::write(
        &tokens,
        format!("# readers\nanother-token-for-grafana\n{token}\n"),
    )
    .expect("tokens");
    let (serve, said, addr) = serve(&files[..1], &["--http-token-file", utf8(&tokens)]);
    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(get_raw(addr, "/api/v1/calls", &[]).0, 401);
    assert_eq!(
        get_raw(
            addr,
            "/api/v1/calls",
            &["Authorization: Bearer wrong-token-of-length"]
        )
        .0,
        401
    );
    assert_eq!(get_raw(addr, "/", &[]).0, 401, "pages too");
    assert_eq!(get_raw(addr, "/metrics", &[]).0, 401, "and metrics");
    assert_eq!(
        get_raw(addr, "/healthz", &[]).0,
        200,
        "but not the liveness probe"
    );
    assert_eq!(get_raw(addr, "/api/v1/calls", &[&bearer]).0, 200);
    drop(serve);
    let log = said.rest().join("\n");
    assert!(log.contains("GET /api/v1/calls 401"), "{log}");
    assert!(log.contains("GET /api/v1/calls 200"), "{log}");
    assert!(!log.contains(token), "the token is never logged");
}

#[test]
fn the_live_view_follows_calls_as_they_start_and_end() {
    if !may_capture() {
        return;
    }
    // It attached before it began serving; its stderr stays read to the end.
    let (_capture, _said, addr) = sensor(&[
        "capture",
        "-i",
        "lo",
        "--mode",
        "pcap",
        "--ports",
        "5362-5363",
        "--http",
        "127.0.0.1:0",
    ]);
    let events = std::thread::spawn(move || sse_events(addr, 3, Duration::from_secs(120)));
    std::thread::sleep(Duration::from_millis(300));
    let sender = std::thread::spawn(|| send_calls(3, 5362, 5363));

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen: HashSet<String> = HashSet::new();
    while Instant::now() < deadline && seen.len() < 3 {
        for call in json(addr, "/api/v1/live")["calls"]
            .as_array()
            .expect("calls")
        {
            seen.insert(call["call_id"].as_str().expect("id").to_owned());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(seen.len(), 3, "each call showed while it lasted: {seen:?}");
    sender.join().expect("sent");
    // Each leaves the listing at its BYE.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && json(addr, "/api/v1/live")["open_legs"] != 0 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let live = json(addr, "/api/v1/live");
    assert_eq!(live["calls"].as_array().map(Vec::len), Some(0), "{live}");
    // Its record follows once retransmissions can no longer come (Timer J, 32 s).
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline && json(addr, "/api/v1/calls")["total"] != 3 {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(json(addr, "/api/v1/calls")["total"], 3);
    // Their messages were kept in memory: each call's five, in order, and a pcap of them
    // that reads back the same.
    let page = json(addr, "/api/v1/calls?sort=invite_at");
    for call in page["calls"].as_array().expect("calls") {
        let id = call["id"].as_str().expect("id");
        let listed = json(addr, &format!("/api/v1/calls/{id}/messages"));
        let labels: Vec<&str> = listed
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["label"].as_str().expect("label"))
            .collect();
        assert_eq!(labels, ["INVITE", "200 OK", "ACK", "BYE", "200 OK"]);
        let (status, _, pcap) = get_raw(addr, &format!("/api/v1/calls/{id}/pcap"), &[]);
        assert_eq!(status, 200);
        let written = scratch("web-live-pcap").join("call.pcap");
        std::fs::write(&written, &pcap).expect("written");
        let again = spycraft(&["dump", "--format", "json", utf8(&written)]);
        assert_eq!(
            text(&again.stdout).lines().count(),
            5,
            "the pcap holds them"
        );
    }
    let held = &json(addr, "/api/v1/status")["recent_messages"];
    assert_eq!(
        (&held["calls"], &held["messages"]),
        (&3.into(), &15.into()),
        "{held}"
    );
    let events = events.join().expect("events");
    for kind in ["started", "answered", "ended", "recorded"] {
        assert_eq!(
            events.iter().filter(|e| *e == kind).count(),
            3,
            "{kind}: {events:?}"
        );
    }
}

/// The names of the events `/api/v1/live/events` sends, until `recorded` events have come
/// or `within` has passed.
fn sse_events(addr: SocketAddr, recorded: usize, within: Duration) -> Vec<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    write!(
        stream,
        "GET /api/v1/live/events HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    )
    .expect("request");
    let mut reader = BufReader::new(stream);
    let mut names = Vec::new();
    let deadline = Instant::now() + within;
    let mut line = String::new();
    while Instant::now() < deadline && names.iter().filter(|n| *n == "recorded").count() < recorded
    {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {
                if let Some(name) = line.trim().strip_prefix("event: ") {
                    names.push(name.to_owned());
                }
            }
            Err(_) => continue,
        }
    }
    names
}

#[test]
fn two_sensors_in_one_database_are_one_history() {
    let pg = support::postgres::Cluster::start();
    let conn = pg.create_db("cdr");
    let dir = scratch("web-postgres");
    let legs: Vec<PathBuf> = bundled()
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("b2bua"))
        .collect();
    let everything = bundled();
    // Two sensors: one saw the B2BUA's A side and every other case, one its B side.
    let mut expected: Vec<Value> = Vec::new();
    let mut stored_messages = 0;
    for (node, files) in [
        (
            "east",
            everything
                .iter()
                .filter(|f| !f.to_string_lossy().contains("b2bua-b"))
                .cloned()
                .collect::<Vec<_>>(),
        ),
        ("west", vec![legs[1].clone()]),
    ] {
        let spool = dir.join(node);
        let mut args = vec![
            "analyze",
            "--node",
            node,
            "--postgres",
            &conn,
            "--spool",
            utf8(&spool),
            "--store-messages",
            "-q",
        ];
        args.extend(files.iter().map(|f| utf8(f)));
        let out = spycraft(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        // Every SIP message each sensor saw is stored (`dump` lists them).
        let mut dump = vec!["dump", "--format", "json"];
        dump.extend(files.iter().map(|f| utf8(f)));
        stored_messages += text(&spycraft(&dump).stdout).lines().count();
        // A replay stores nothing twice.
        if node == "east" {
            let before = pg.psql("cdr", "SELECT count(*) FROM sip_message");
            let out = spycraft(&args);
            assert!(out.status.success(), "{}", text(&out.stderr));
            assert_eq!(pg.psql("cdr", "SELECT count(*) FROM sip_message"), before);
        }
        let mut args = vec!["analyze", "--node", node, "--format", "jsonl", "-q"];
        args.extend(files.iter().map(|f| utf8(f)));
        let out = spycraft(&args);
        expected.extend(
            text(&out.stdout)
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("a record")),
        );
    }

    let (_serve, _said, addr) = sensor(&["serve", "--postgres", &conn, "--http", "127.0.0.1:0"]);
    assert_eq!(get(addr, "/readyz").0, 200);

    // Every record once, page after page, in both orders; the same ones analyze wrote.
    let ids: BTreeSet<String> = expected
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    for sort in ["sort=invite_at", "sort=-invite_at", "sort=-billable_ms"] {
        let paged = every_page(addr, sort);
        assert_eq!(paged.len(), ids.len(), "{sort}");
        assert_eq!(paged.into_iter().collect::<BTreeSet<_>>(), ids, "{sort}");
    }
    // The same filters give the same counts as over memory.
    let answered = expected
        .iter()
        .filter(|r| r["disposition"] == "answered")
        .count();
    assert_eq!(
        json(addr, "/api/v1/calls?disposition=answered")["total"],
        answered
    );
    let west = expected.iter().filter(|r| r["node"] == "west").count();
    assert_eq!(json(addr, "/api/v1/calls?node=west")["total"], west);
    let alice = json(addr, "/api/v1/calls?q=ALICE&limit=1")["total"]
        .as_u64()
        .expect("a count");
    let (_serve_mem, _said_mem, mem) = serve(&everything, &[]);
    assert_eq!(
        json(mem, "/api/v1/calls?q=alice&limit=1")["total"].as_u64(),
        Some(alice)
    );

    // The B2BUA call's page shows both nodes' legs.
    let b2bua = expected
        .iter()
        .find(|r| r["node"] == "west")
        .expect("the B side");
    let detail = json(
        addr,
        &format!("/api/v1/calls/{}", b2bua["id"].as_str().expect("id")),
    );
    let nodes: BTreeSet<&str> = detail["legs"]
        .as_array()
        .expect("legs")
        .iter()
        .map(|l| l["node"].as_str().expect("node"))
        .collect();
    assert_eq!(nodes, BTreeSet::from(["east", "west"]));

    // Reports over the database.
    let report = json(addr, "/api/v1/accounting?by=node");
    assert_eq!(report["total"]["calls"], expected.len());
    let stats = json(addr, "/api/v1/stats?by=node");
    assert_eq!(stats["groups"]["west"]["attempts"], west);
    let (status, html) = get(
        addr,
        &format!("/calls/{}", b2bua["id"].as_str().expect("id")),
    );
    assert_eq!(status, 200);
    assert!(html.contains("west") && html.contains("east"));
    assert_eq!(
        pg.psql("cdr", "SELECT count(*) FROM sip_message"),
        stored_messages.to_string()
    );

    // Both flows: the messages of both legs, each node's, as `dump` lists them from the two
    // captures; the ladder and the pcap rebuilt from the database agree.
    let id = b2bua["id"].as_str().expect("id");
    let mut args = vec!["dump", "--format", "json", "--call-id"];
    args.push(b2bua["call_id"].as_str().expect("call id"));
    args.extend(legs.iter().map(|f| utf8(f)));
    let dumped: Vec<Value> = text(&spycraft(&args).stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a message"))
        .collect();
    let call_ids: BTreeSet<&str> = dumped
        .iter()
        .map(|m| m["call_id"].as_str().expect("call id"))
        .collect();
    assert_eq!(call_ids.len(), 2, "both legs: {call_ids:?}");
    let listed = json(addr, &format!("/api/v1/calls/{id}/messages"));
    let listed = listed.as_array().expect("messages");
    assert_eq!(listed.len(), dumped.len());
    for (got, want) in listed.iter().zip(&dumped) {
        assert_eq!(got["call_id"], want["call_id"]);
        assert_eq!(got["src"], want["src"]);
        assert_eq!(got["label"], want["label"]);
    }
    let (status, svg) = get(addr, &format!("/api/v1/calls/{id}/flow.svg"));
    assert_eq!(status, 200);
    assert_eq!(
        svg.matches("marker-end=\"url(#head)\"").count(),
        dumped.len()
    );
    let (status, _, pcap) = get_raw(addr, &format!("/api/v1/calls/{id}/pcap"), &[]);
    assert_eq!(status, 200);
    let written = dir.join("b2bua.pcap");
    std::fs::write(&written, &pcap).expect("written");
    let again = spycraft(&["dump", "--format", "json", utf8(&written)]);
    assert_eq!(text(&again.stdout).lines().count(), dumped.len());

    // A sensor with a rate deck prices each record in the database.
    let rates = write_deck(&dir);
    let capture = write_priced_capture(&dir, 40);
    let spool = dir.join("priced");
    let out = spycraft(&[
        "analyze",
        "--node",
        "priced",
        "--postgres",
        &conn,
        "--spool",
        utf8(&spool),
        "--rates",
        utf8(&rates),
        "-q",
        utf8(&capture),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (micros, unrated) = expected_cost(&analyzed(&[capture]));
    assert_eq!(
        pg.psql(
            "cdr",
            "SELECT sum(cost * 1000000)::bigint || ' ' || count(*) FILTER (WHERE rated_prefix IS NULL) \
             FROM cdr WHERE node = 'priced'"
        ),
        format!("{micros} {unrated}")
    );
}

#[test]
fn messages_the_database_cannot_take_are_counted_and_fail_the_run() {
    let dir = scratch("web-messages-lost");
    let out = spycraft(&[
        "analyze",
        "--postgres",
        "postgresql://spycraft@127.0.0.1:9/cdr?connect_timeout=1",
        "--spool",
        utf8(&dir.join("spool")),
        "--drain-timeout",
        "1",
        "--store-messages",
        utf8(&bundled()[0]),
    ]);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("SIP messages for PostgreSQL") && said.contains("LOST"),
        "{said}"
    );
    let out = spycraft(&["analyze", "--store-messages", utf8(&bundled()[0])]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// One HTTPS GET through `openssl s_client`, trusting `ca` and checking the certificate is
/// the server's own; the reply as text, or `None` without openssl (never under CI=true).
fn https_get(addr: SocketAddr, ca: &Path, path: &str, headers: &[&str]) -> Option<String> {
    use std::io::Write;
    let child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-verify_return_error",
            "-verify_ip",
            "127.0.0.1",
        ])
        .arg("-connect")
        .arg(addr.to_string())
        .arg("-CAfile")
        .arg(ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = installed("openssl", "openssl", child)?;
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.as_bytes())
        .expect("sent");
    let out = child.wait_with_output().expect("openssl");
    assert!(out.status.success(), "{}", text(&out.stderr));
    Some(text(&out.stdout))
}

#[test]
fn https_serves_its_certificate_and_browsers_sign_in_with_argon2_passwords() {
    let dir = scratch("web-tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=spycraft test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    let Some(made) = installed("openssl", "openssl", made) else {
        return;
    };
    assert!(made.status.success(), "{}", text(&made.stderr));
    let users = dir.join("users");
    let hash = {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"sixteen byte salt").expect("salt");
        argon2::Argon2::default()
            .hash_password(b"correct horse", &salt)
            .expect("a hash")
            .to_string()
    };
    std::fs::write(&users, format!("# the web's users\nalice:{hash}\n")).expect("users");

    let files = bundled();
    let (_serve, _said, addr) = serve(
        &files[..1],
        &[
            "--http-cert",
            utf8(&cert),
            "--http-key",
            utf8(&key),
            "--http-users",
            utf8(&users),
        ],
    );
    let Some(refused) = https_get(addr, &cert, "/api/v1/status", &[]) else {
        return;
    };
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(
        refused
            .to_ascii_lowercase()
            .contains("www-authenticate: basic"),
        "{refused}"
    );
    use base64::Engine;
    let basic = |who: &str| {
        format!(
            "Authorization: Basic {}",
            base64::engine::general_purpose::STANDARD.encode(who)
        )
    };
    let wrong = https_get(
        addr,
        &cert,
        "/api/v1/status",
        &[&basic("alice:battery staple")],
    );
    assert!(wrong.is_some_and(|r| r.starts_with("HTTP/1.1 401")));
    let signed_in = https_get(
        addr,
        &cert,
        "/calls?q=alice",
        &[&basic("alice:correct horse")],
    )
    .expect("a reply");
    assert!(signed_in.starts_with("HTTP/1.1 200"), "{signed_in}");
    assert!(signed_in.contains("<span id=\"total\">"));
    // Plain HTTP to the HTTPS port gets no page.
    assert!(support::http::try_get(addr, "/healthz").map_or(true, |(status, _)| status != 200));
}
