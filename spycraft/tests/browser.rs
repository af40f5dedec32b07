// SPDX-License-Identifier: AGPL-3.0-or-later
//! The pages in a real browser: Debian's chromium, driven through chromedriver (WebDriver),
//! against `spycraft serve` on the bundled captures and on a made capture of 5,000 calls, and
//! against a live capture on loopback. Each page's screenshot is kept in
//! `target/web-screenshots/`.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::Value;
use support::calls::send_calls;
use support::deck::{expected_cost, write_deck, write_priced_capture};
use support::http::start_sensor;
use support::process::{installed, may_capture, Reaped};
use support::serving::{analyzed, bundled, serve};
use support::{scratch, spycraft, text, utf8};

/// chromedriver on a port of its own, and a headless chromium session through it.
struct Browser {
    client: Client,
    _driver: Reaped,
}

impl Browser {
    /// `None` when chromedriver is not installed here (never under CI=true).
    async fn start() -> Option<Self> {
        // The WebDriver client speaks plain HTTP to chromedriver; its TLS stack still wants
        // a crypto provider chosen.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let spawned = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let driver = Reaped::spawn_from(installed("chromedriver", "chromium-driver", spawned)?);
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let connecting = ClientBuilder::rustls()
                .expect("a TLS configuration")
                .capabilities(capabilities.clone())
                .connect(&url)
                .await;
            match connecting {
                Ok(client) => {
                    return Some(Self {
                        client,
                        _driver: driver,
                    })
                }
                Err(e) if Instant::now() > deadline => panic!("chromedriver: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    async fn open(&self, addr: SocketAddr, path: &str) {
        self.client
            .goto(&format!("http://{addr}{path}"))
            .await
            .expect("the page");
    }

    async fn text_of(&self, css: &str) -> String {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .expect("its text")
    }

    async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .expect("a search")
            .len()
    }

    /// Waits until `css` matches `n` elements.
    async fn until_count(&self, css: &str, n: usize, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let found = self.count(css).await;
            if found == n || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `q` into the search form, submits it and reads how many calls match.
    async fn search(&self, addr: SocketAddr, q: &str) -> usize {
        self.open(addr, "/calls").await;
        let find = |id| self.client.find(Locator::Id(id));
        find("q")
            .await
            .expect("the search box")
            .send_keys(q)
            .await
            .expect("typed");
        find("search-button")
            .await
            .expect("the button")
            .click()
            .await
            .expect("clicked");
        self.text_of("#total").await.parse().expect("a count")
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../web-screenshots");
        std::fs::create_dir_all(&dir).expect("the directory");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("saved");
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn search_and_call_pages_show_what_analyze_and_dump_say() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let files = bundled();
    let records = analyzed(&files);
    let (_serve, _said, addr) = serve(&files, &[]);

    // The search form finds calls by number or user, as the same filter over the records.
    let total = browser.search(addr, "alice").await;
    let expected = records
        .iter()
        .filter(|r| {
            ["from_user", "to_user", "from_uri", "to_uri", "request_uri"]
                .iter()
                .any(|f| {
                    r[f].as_str()
                        .is_some_and(|v| v.to_ascii_lowercase().starts_with("alice"))
                })
        })
        .count();
    assert_eq!(total, expected);
    browser.screenshot("calls").await;

    // The first result's page: its ladder has one arrow per message `dump` lists.
    let link = browser
        .client
        .find(Locator::Css("#results tbody tr td a"))
        .await
        .expect("a result");
    link.click().await.expect("followed");
    let id = browser.text_of("#record-id").await;
    let record: &Value = records
        .iter()
        .find(|r| r["id"] == id.as_str())
        .expect("the record");
    let collation = record["collation_id"].as_str().expect("collation");
    let mut args = vec!["dump", "--format", "json"];
    let call_ids: Vec<&str> = records
        .iter()
        .filter(|r| r["collation_id"] == collation)
        .map(|r| r["call_id"].as_str().expect("call id"))
        .collect();
    for c in &call_ids {
        args.extend(["--call-id", c]);
    }
    args.extend(files.iter().map(|f| utf8(f)));
    let dumped = spycraft(&args);
    let messages = text(&dumped.stdout).lines().count();
    assert!(messages > 0);
    let arrows = browser
        .until_count(
            "#ladder svg [marker-end]",
            messages,
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(arrows, messages, "one arrow per message of {call_ids:?}");
    assert_eq!(
        browser
            .until_count("#messages details", messages, Duration::from_secs(20))
            .await,
        messages
    );
    browser.screenshot("call").await;

    browser.open(addr, "/").await;
    browser.text_of("#capture").await;
    browser.screenshot("dashboard").await;
    browser.close().await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_accounting_page_totals_five_thousand_calls_as_the_deck_prices_them() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let dir = scratch("browser-accounting");
    let files = [write_priced_capture(&dir, 5000)];
    let rates = write_deck(&dir);
    let records = analyzed(&files);
    let (_serve, _said, addr) = serve(&files, &["--rates", utf8(&rates)]);
    let (micros, _) = expected_cost(&records);

    browser.open(addr, "/accounting?by=destination").await;
    let cost: f64 = browser
        .text_of("#total .cost")
        .await
        .parse()
        .expect("a cost");
    assert_eq!((cost * 1e6).round() as i64, micros);
    let calls: usize = browser
        .text_of("#total .calls")
        .await
        .parse()
        .expect("calls");
    assert_eq!(calls, 5000);
    browser.screenshot("accounting").await;

    // A number's calls, found through the form.
    let total = browser.search(addr, "4930*").await;
    let expected = records
        .iter()
        .filter(|r| r["to_user"].as_str().is_some_and(|u| u.starts_with("4930")))
        .count();
    assert_eq!(total, expected);
    browser.close().await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_dashboard_gains_a_live_call_and_loses_it_when_it_ends() {
    if !may_capture() {
        return;
    }
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (_capture, _said, addr) = start_sensor(&[
        "capture",
        "-i",
        "lo",
        "--mode",
        "pcap",
        "--ports",
        "5366-5367",
        "--http",
        "127.0.0.1:0",
    ]);
    browser.open(addr, "/").await;
    browser.text_of("#live-calls").await;
    let sender = std::thread::spawn(|| send_calls(1, 5366, 5367));
    let rows = browser
        .until_count("#live-calls tbody tr", 1, Duration::from_secs(20))
        .await;
    assert_eq!(rows, 1, "the call shows while it lasts");
    browser.screenshot("dashboard-live").await;
    sender.join().expect("sent");
    let rows = browser
        .until_count("#live-calls tbody tr", 0, Duration::from_secs(20))
        .await;
    assert_eq!(rows, 0, "and leaves at its BYE");
    browser.close().await;
}
