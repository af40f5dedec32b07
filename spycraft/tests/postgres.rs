// SPDX-License-Identifier: AGPL-3.0-or-later
//! PostgreSQL call accounting against a real server the harness starts (never a mock):
//! every record lands once, with every field; outages, kills and replays lose nothing and
//! duplicate nothing; several sensors join into whole calls; TLS and passwords.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use spycraft::call::{CallRecord, Timestamp};
use spycraft::sink::postgres::{PostgresConfig, PostgresSink, Target};
use spycraft::sink::spool::{self, FsyncPolicy, SpoolConfig};
use spycraft::sink::RecordSink;
use support::postgres::{Cluster, Settings};
use support::{bundled as capture, bundled_cases as cases, pcaps, scratch, spycraft, text, utf8};

fn expected(case: &str) -> Vec<Value> {
    std::fs::read_to_string(pcaps().join(case).join("expected.jsonl"))
        .expect("expected.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect()
}

/// `analyze` of one case into the database; panics unless it succeeds.
fn analyze_into(conninfo: &str, spool: &Path, node: &str, case: &str) -> String {
    let out = spycraft(&[
        "analyze",
        "--node",
        node,
        "--postgres",
        conninfo,
        "--spool",
        utf8(spool),
        utf8(&capture(case)),
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{case}: {stderr}");
    assert!(out.stdout.is_empty(), "records go to the database only");
    stderr
}

/// Every row of `cdr` in the contract's JSON form (times as RFC 3339 UTC with microseconds,
/// addresses as text), keyed by id.
fn rows_as_json(pg: &Cluster, db: &str) -> Vec<Value> {
    let ts = |c: &str| {
        format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS {c}")
    };
    let sql = format!(
        "SELECT row_to_json(t) FROM (SELECT id, node, call_id, from_tag, to_tag, collation_id, \
         from_uri, from_user, to_uri, to_user, request_uri, p_asserted_identity, diversion, \
         host(caller_ip) AS caller_ip, caller_port, host(callee_ip) AS callee_ip, callee_port, \
         transport, vlan, direction, user_agent, server, {}, {}, {}, {}, duration_ms, \
         billable_ms, pdd_ms, sdd_ms, setup_ms, hold_ms, forked_dialogs, forked_last_status, {}, \
         transferred_by, transfer_to, transfer_status, referred_by, transferred_from, disposition, \
         final_status, final_reason, \
         q850_cause, ended_by, \
         end_reason, auth_challenges, invite_retransmissions, capture_issues, agent_id, agent_name \
         FROM cdr ORDER BY id) t",
        ts("invite_at"),
        ts("ring_at"),
        ts("answer_at"),
        ts("end_at"),
        ts("transfer_at")
    );
    pg.psql(db, &sql)
        .lines()
        .map(|l| serde_json::from_str(l).expect("row_to_json"))
        .collect()
}

fn count(pg: &Cluster, db: &str, sql: &str) -> u64 {
    pg.psql(db, sql)
        .parse()
        .unwrap_or_else(|_| panic!("a count from {sql}"))
}

#[test]
fn every_record_lands_once_with_every_field_and_a_replay_adds_nothing() {
    let pg = Cluster::start();
    let conn = pg.create_db("cdr");
    let spool = scratch("pg-every-record");
    let mut all: Vec<Value> = Vec::new();
    for case in cases() {
        let stderr = analyze_into(&conn, &spool, "golden", &case);
        let n = expected(&case).len();
        assert!(
            stderr.contains(&format!("PostgreSQL: {n} records delivered ({n} new)")),
            "{case}: {stderr}"
        );
        all.extend(expected(&case));
    }
    all.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let rows = rows_as_json(&pg, "cdr");
    assert_eq!(rows.len(), all.len(), "one row per record");
    for (row, record) in rows.iter().zip(&all) {
        assert_eq!(row, record, "the row holds the record, field by field");
    }

    // A replay of everything is skipped on the record ids.
    for case in cases() {
        let stderr = analyze_into(&conn, &spool, "golden", &case);
        assert!(stderr.contains("(0 new)"), "{case}: {stderr}");
    }
    assert_eq!(
        count(&pg, "cdr", "SELECT count(*) FROM cdr"),
        all.len() as u64
    );
    assert_eq!(
        spool::inspect(&spool).expect("spool").map(|b| b.records),
        Some(0),
        "the spool is empty once the database has everything"
    );

    // Each run left its counters.
    let runs = 2 * cases().len() as u64;
    assert_eq!(
        count(
            &pg,
            "cdr",
            "SELECT count(*) FROM sensor_stats WHERE node = 'golden' AND source = 'analyze'"
        ),
        runs
    );
    assert_eq!(
        count(
            &pg,
            "cdr",
            "SELECT count(*) FROM sensor_stats \
             WHERE (counters->'parse'->>'sip_messages')::int > 0 AND counters ? 'dispositions'"
        ),
        runs,
        "every snapshot holds the run's counters"
    );
}

#[test]
fn sensors_starting_together_apply_each_migration_once() {
    let pg = Cluster::start();
    let conn = pg.create_db("cdr");
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_spycraft"))
                .args(["db", "migrate", "--postgres", &conn])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    assert_eq!(
        pg.psql(
            "cdr",
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM spycraft_migrations"
        ),
        "1,2,3,4,5,6"
    );
    let out = spycraft(&["db", "migrate", "--postgres", &conn]);
    assert!(
        text(&out.stdout).contains("schema up to date"),
        "{}",
        text(&out.stdout)
    );

    let spool = scratch("pg-status-spool");
    let out = spycraft(&["db", "status", "--postgres", &conn, "--spool", utf8(&spool)]);
    let status = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for line in [
        "schema:     version 6",
        "records:    0",
        "partitions: none yet",
    ] {
        assert!(status.contains(line), "{line:?} in {status}");
    }

    // A database changed behind spycraft's back is refused, before anything is analysed.
    pg.psql(
        "cdr",
        "UPDATE spycraft_migrations SET checksum = 'edited' WHERE version = 1",
    );
    let out = spycraft(&["db", "migrate", "--postgres", &conn]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("migration 1 differs"),
        "{}",
        text(&out.stderr)
    );
    pg.psql(
        "cdr",
        "INSERT INTO spycraft_migrations VALUES (99, 'future', 'x')",
    );
    let out = spycraft(&[
        "analyze",
        "--postgres",
        &conn,
        "--spool",
        utf8(&spool),
        utf8(&capture("busy-486")),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("differs") || text(&out.stderr).contains("newer"));
}

/// A record of the answered-caller-bye case, made unique by `n` and moved to `at`.
fn synthetic(n: u32, at: Timestamp) -> CallRecord {
    let template: CallRecord = serde_json::from_value(expected("answered-caller-bye").remove(0))
        .expect("the contract reads back");
    let shift = at.0 - template.invite_at.0;
    let moved = |t: Option<Timestamp>| t.map(|t| Timestamp(t.0 + shift));
    CallRecord {
        id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &n.to_be_bytes()),
        call_id: format!("synthetic-{n}@spycraft.test"),
        collation_id: format!("synthetic-{n}@spycraft.test"),
        invite_at: at,
        ring_at: moved(template.ring_at),
        answer_at: moved(template.answer_at),
        end_at: moved(template.end_at),
        ..template
    }
}

fn sink_config(conninfo: &str, spool: &Path, retention_days: Option<u32>) -> PostgresConfig {
    PostgresConfig {
        target: Target::parse(conninfo, None, "spycraft test").expect("conninfo"),
        node: "test".into(),
        spool: SpoolConfig {
            dir: spool.to_path_buf(),
            max_bytes: 64 << 20,
            fsync: FsyncPolicy::default(),
        },
        batch_size: 100,
        retention_days,
        drain_timeout: Duration::from_secs(60),
        report_on_finish: true,
        deck: None,
    }
}

/// Polls until `sql` counts at least `n` (or a minute passes); returns the last count.
fn wait_for_count(pg: &Cluster, db: &str, sql: &str, n: u64) -> u64 {
    let start = Instant::now();
    loop {
        let c = count(pg, db, sql);
        if c >= n || start.elapsed() > Duration::from_secs(60) {
            return c;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_database_outage_mid_run_loses_nothing_and_duplicates_nothing() {
    let pg = Cluster::start();
    let conn = pg.create_db("cdr");
    let spool = scratch("pg-outage");
    let day = 86_400_000_000;
    let start = Timestamp(1_790_000_000_000_000);
    // Three days of calls, so three partitions are made along the way.
    let records: Vec<CallRecord> = (0..3000)
        .map(|n| synthetic(n, Timestamp(start.0 + i64::from(n) * day / 1000)))
        .collect();
    let mut sink = PostgresSink::start(sink_config(&conn, &spool, None)).expect("sink starts");
    for r in &records[..1500] {
        sink.write(r).expect("spooled");
    }
    // Cut the server while batches are in flight, and keep feeding.
    assert!(wait_for_count(&pg, "cdr", "SELECT count(*) FROM cdr", 200) >= 200);
    pg.pause();
    for r in &records[1500..2500] {
        sink.write(r).expect("spooled while the database is down");
    }
    std::thread::sleep(Duration::from_millis(1500));
    pg.resume();
    for r in &records[2500..] {
        sink.write(r).expect("spooled");
    }
    sink.finish().expect("everything delivered");

    assert_eq!(count(&pg, "cdr", "SELECT count(*) FROM cdr"), 3000);
    assert_eq!(
        count(&pg, "cdr", "SELECT count(DISTINCT id) FROM cdr"),
        3000
    );
    let want: Vec<String> = {
        let mut ids: Vec<String> = records.iter().map(|r| r.id.to_string()).collect();
        ids.sort();
        ids
    };
    let got: Vec<String> = pg
        .psql("cdr", "SELECT id FROM cdr ORDER BY id::text")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(got, want, "exactly the records fed, once each");
    assert_eq!(
        count(
            &pg,
            "cdr",
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'cdr'::regclass"
        ),
        4,
        "one partition per UTC day touched"
    );
    assert_eq!(
        spool::inspect(&spool).expect("spool").map(|b| b.records),
        Some(0)
    );
}

#[test]
fn a_killed_sensor_s_spool_is_delivered_at_the_next_start() {
    let pg = Cluster::start();
    let conn = pg.create_db("cdr");
    let spool = scratch("pg-killed");
    pg.pause();
    // The database is down: the sensor analyses, spools, and waits to deliver.
    let mut child = Command::new(env!("CARGO_BIN_EXE_spycraft"))
        .args([
            "analyze",
            "--node",
            "golden",
            "--postgres",
            &conn,
            "--spool",
            utf8(&spool),
            "--drain-timeout",
            "600",
            utf8(&capture("tcp-one-connection")),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while spool::inspect(&spool)
        .ok()
        .flatten()
        .map_or(0, |b| b.records)
        < 3
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "records never reached the spool"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    let out = child.wait_with_output().expect("reaped");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("records are kept in spool"), "{stderr}");
    // A record torn by the kill mid-write is cut off at the next start, not delivered.
    let segment = std::fs::read_dir(&spool)
        .expect("spool dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .max()
        .expect("a segment");
    let mut torn = std::fs::read(&segment).expect("segment");
    torn.extend_from_slice(br#"{"id":"00000000-0000-0000-0000-0000"#);
    std::fs::write(&segment, torn).expect("tear");

    let out = spycraft(&["db", "status", "--postgres", &conn, "--spool", utf8(&spool)]);
    assert!(!out.status.success(), "status needs the server");
    let out = spycraft(&[
        "db",
        "flush",
        "--postgres",
        &conn,
        "--spool",
        utf8(&spool),
        "--drain-timeout",
        "1",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("interrupted by a crash"), "{stderr}");
    assert!(
        stderr.contains("3 records could not be delivered yet"),
        "{stderr}"
    );

    pg.resume();
    let out = spycraft(&["db", "status", "--postgres", &conn, "--spool", utf8(&spool)]);
    assert!(
        text(&out.stdout).contains("spool:      3 records"),
        "{}",
        text(&out.stdout)
    );
    let stderr = analyze_into(&conn, &spool, "golden", "b2bua-a-leg");
    assert!(stderr.contains("3 records left in spool"), "{stderr}");
    assert!(stderr.contains("5 records delivered (5 new)"), "{stderr}");
    let mut want: Vec<String> = expected("tcp-one-connection")
        .into_iter()
        .chain(expected("b2bua-a-leg"))
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    want.sort();
    let got: Vec<String> = pg
        .psql("cdr", "SELECT id FROM cdr ORDER BY id::text")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn two_sensors_on_the_sides_of_a_b2bua_make_one_call_each() {
    let pg = Cluster::start();
    let conn = pg.create_db("cdr");
    analyze_into(&conn, &scratch("pg-b2bua-a"), "sbc-a", "b2bua-a-leg");
    // The second sensor takes its settings from a file.
    let settings = scratch("pg-b2bua-b").join("spycraft.toml");
    std::fs::write(
        &settings,
        format!(
            "[sensor]\nnode = \"sbc-b\"\n[postgres]\nurl = \"{conn}\"\nspool = \"{}\"\nbatch_size = 1\n",
            utf8(&scratch("pg-b2bua-b-spool"))
        ),
    )
    .expect("settings");
    let out = spycraft(&[
        "analyze",
        "--config",
        utf8(&settings),
        utf8(&capture("b2bua-b-leg")),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("2 records delivered"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        pg.psql(
            "cdr",
            "SELECT collation_id, leg_count, nodes, disposition, answered FROM calls ORDER BY 1"
        ),
        "b2bua-call-1|2|{sbc-a,sbc-b}|answered|t\nb2bua-call-2|2|{sbc-a,sbc-b}|answered|t"
    );
    assert_eq!(
        count(
            &pg,
            "cdr",
            "SELECT count(DISTINCT l->>'call_id') FROM calls, jsonb_array_elements(legs) l"
        ),
        4,
        "each leg keeps its own Call-ID"
    );
    // Asterisk's layout, for billing tools that read it.
    let rows = pg.psql(
        "cdr",
        "SELECT src, dst, disposition, billsec, duration >= billsec, dcontext, linkedid, \
         uniqueid = (SELECT id::text FROM cdr WHERE cdr.id::text = a.uniqueid) \
         FROM cdr_asterisk a ORDER BY calldate",
    );
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines.len(), 4, "{rows}");
    for line in &lines {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f[0], "alice", "{line}");
        assert_eq!(f[1], "bob", "{line}");
        assert_eq!(f[2], "ANSWERED", "{line}");
        assert!(
            f[3] == "2" || f[3] == "3",
            "three seconds of talk, in completed seconds: {line}"
        );
        assert_eq!(f[4], "t", "{line}");
        assert!(f[5] == "sbc-a" || f[5] == "sbc-b", "{line}");
        assert!(f[6].starts_with("b2bua-call-"), "{line}");
        assert_eq!(f[7], "t", "{line}");
    }
}

#[test]
fn retention_drops_partitions_past_their_days() {
    let pg = Cluster::start();
    let conn = pg.create_db("cdr");
    let spool = scratch("pg-retention");
    let now = Timestamp(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_micros(),
        )
        .expect("fits"),
    );
    let day = 86_400_000_000;
    let mut sink = PostgresSink::start(sink_config(&conn, &spool, None)).expect("starts");
    for (n, days_ago) in [(1, 100), (2, 10), (3, 0)] {
        sink.write(&synthetic(n, Timestamp(now.0 - days_ago * day)))
            .expect("spooled");
    }
    sink.finish().expect("delivered");
    drop(sink);
    assert_eq!(count(&pg, "cdr", "SELECT count(*) FROM cdr"), 3);

    let mut sink = PostgresSink::start(sink_config(&conn, &spool, Some(30))).expect("starts");
    sink.finish().expect("nothing to deliver");
    assert_eq!(
        pg.psql(
            "cdr",
            "SELECT string_agg(call_id, ',' ORDER BY invite_at) FROM cdr"
        ),
        "synthetic-2@spycraft.test,synthetic-3@spycraft.test",
        "the 100-day-old partition is gone, the rest kept"
    );
}

/// A CA and a server certificate for `localhost`, made with openssl in `dir`; returns the
/// CA's path, and the server's certificate and key.
fn certificates(dir: &Path) -> (PathBuf, Vec<u8>, Vec<u8>) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (Debian's openssl package)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            text(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=spycraft test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
    ]);
    let read = |name: &str| std::fs::read(dir.join(name)).expect(name);
    (dir.join("ca.pem"), read("server.crt"), read("server.key"))
}

#[test]
fn tls_is_verified_as_libpq_does_and_the_password_is_never_printed() {
    const PASSWORD: &str = "s3cret-Pa55word";
    let (ca, cert, key) = certificates(&scratch("pg-tls"));
    let pg = Cluster::start_with(Settings {
        tcp: true,
        conf: vec![
            "ssl = on".into(),
            "ssl_cert_file = '../server.crt'".into(),
            "ssl_key_file = '../server.key'".into(),
            "password_encryption = 'scram-sha-256'".into(),
        ],
        hba: vec![
            "hostssl all all 127.0.0.1/32 scram-sha-256".into(),
            "hostnossl all all 127.0.0.1/32 reject".into(),
        ],
        files: vec![
            ("server.crt".into(), cert, 0o644),
            ("server.key".into(), key, 0o600),
        ],
    });
    pg.psql(
        "postgres",
        &format!("CREATE ROLE spy LOGIN PASSWORD '{PASSWORD}'"),
    );
    pg.psql("postgres", "CREATE DATABASE cdr OWNER spy");
    let port = pg.port;
    let ca = utf8(&ca);
    let url = |host: &str, mode: &str, password: &str| {
        format!("postgresql://spy{password}@{host}:{port}/cdr?sslmode={mode}&sslrootcert={ca}")
    };
    let run = |connection: &str, extra: &[&str], name: &str| {
        let spool = scratch(&format!("pg-tls-{name}"));
        let mut args = vec![
            "analyze",
            "--postgres",
            connection,
            "--spool",
            utf8(&spool),
            "--drain-timeout",
            "1",
        ];
        args.extend_from_slice(extra);
        let input = capture("busy-486");
        args.push(utf8(&input));
        let out = Command::new(env!("CARGO_BIN_EXE_spycraft"))
            .args(&args)
            .env_remove("PGPASSWORD")
            .output()
            .expect("runs");
        let stderr = text(&out.stderr);
        assert!(
            !stderr.contains(PASSWORD),
            "{name}: the password was printed: {stderr}"
        );
        (out.status.code(), stderr)
    };
    let with_pw = format!(":{PASSWORD}");

    let (code, stderr) = run(&url("localhost", "verify-full", &with_pw), &[], "full");
    assert_eq!(
        code,
        Some(0),
        "verify-full against the name in the certificate: {stderr}"
    );
    assert!(stderr.contains("1 records delivered"), "{stderr}");

    let pw_file = scratch("pg-tls-password").join("pw");
    std::fs::write(&pw_file, format!("{PASSWORD}\n")).expect("pw file");
    let (code, stderr) = run(
        &url("localhost", "verify-full", ""),
        &["--postgres-password-file", utf8(&pw_file)],
        "pwfile",
    );
    assert_eq!(code, Some(0), "password from a file: {stderr}");

    // Refusals that waiting will not mend fail the run at once, before anything is read,
    // named as such (exit 1), rather than spooling records for a server that will never
    // take them (exit 4 after the drain timeout).
    let refused = |code: Option<i32>, stderr: &str, what: &str| {
        assert_eq!(code, Some(1), "{what}: {stderr}");
        assert!(stderr.contains(what), "{stderr}");
        assert!(!stderr.contains("kept in"), "nothing was spooled: {stderr}");
    };
    let (code, stderr) = run(
        &url("127.0.0.1", "verify-full", &with_pw),
        &[],
        "wrong-name",
    );
    refused(code, &stderr, "certificate");

    let (code, stderr) = run(&url("127.0.0.1", "verify-ca", &with_pw), &[], "ca-only");
    assert_eq!(
        code,
        Some(0),
        "verify-ca checks the chain, not the name: {stderr}"
    );

    // The server's pg_hba refuses unencrypted sessions.
    let (code, stderr) = run(&url("localhost", "disable", &with_pw), &[], "plain");
    refused(code, &stderr, "no encryption");

    let (code, stderr) = run(&url("localhost", "verify-full", ":not-it"), &[], "bad-pw");
    refused(code, &stderr, "password authentication failed");

    let no_db = url("localhost", "verify-full", &with_pw).replace("/cdr?", "/nodb?");
    let (code, stderr) = run(&no_db, &[], "no-db");
    refused(code, &stderr, "does not exist");

    assert_eq!(
        count(&pg, "cdr", "SELECT count(*) FROM cdr"),
        1,
        "one record, written once"
    );
}

/// libpq's documented URL form for a socket directory: the query's `host` (and `port`)
/// replace the ones before the path, no TLS is tried over the socket, and messages name the
/// socket.
#[test]
fn a_url_with_a_socket_directory_in_its_query_connects_as_libpq_does() {
    let pg = Cluster::start();
    pg.create_db("cdr");
    let url = format!(
        "postgresql://postgres@localhost/cdr?host={}&port={}",
        pg.root.display(),
        pg.port
    );
    let spool = scratch("pg-url-socket");
    let stderr = analyze_into(&url, &spool, "golden", "busy-486");
    assert!(stderr.contains("1 records delivered (1 new)"), "{stderr}");
    assert_eq!(count(&pg, "cdr", "SELECT count(*) FROM cdr"), 1);
    let socket = pg.root.join(format!(".s.PGSQL.{}", pg.port));
    assert!(
        stderr.contains(&format!("PostgreSQL at postgres@{}/cdr", socket.display())),
        "the socket is named: {stderr}"
    );
}
