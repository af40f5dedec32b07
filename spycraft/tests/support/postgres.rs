// SPDX-License-Identifier: AGPL-3.0-or-later
//! A throwaway PostgreSQL cluster per test: initdb into a temporary directory, a server on a
//! Unix socket there (and on a loopback port when asked), stopped and removed on drop. Uses
//! Debian's `postgresql` package (`cargo xtask setup` and CI install it). As root, the server
//! runs as the `postgres` user, since PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static CLUSTERS: AtomicU32 = AtomicU32::new(0);

/// A running (or stopped) test cluster.
#[derive(Debug)]
pub struct Cluster {
    pub root: PathBuf,
    data: PathBuf,
    pub port: u16,
    bin: PathBuf,
    run_as: Option<&'static str>,
}

/// Extra server settings for one test.
#[derive(Debug, Default)]
pub struct Settings {
    /// Listen on 127.0.0.1:port too (for TLS and password tests).
    pub tcp: bool,
    /// Lines appended to postgresql.conf.
    pub conf: Vec<String>,
    /// Lines put first in pg_hba.conf.
    pub hba: Vec<String>,
    /// Files (name, contents, mode) put in the cluster's directory before the server starts.
    pub files: Vec<(String, Vec<u8>, u32)>,
}

fn bindir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries not found under /usr/lib/postgresql: \
             install Debian's postgresql package (`cargo xtask setup` does)"
        ),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether the tests run as root (then the server runs as `postgres`; live capture is allowed).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Cluster {
    pub fn start() -> Self {
        Self::start_with(Settings::default())
    }

    pub fn start_with(settings: Settings) -> Self {
        let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("spycraft-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("cluster dir");
        let run_as = is_root().then_some("postgres");
        if let Some(user) = run_as {
            chown(user, &root);
        }
        let cluster = Self {
            data: root.join("data"),
            root,
            port: free_port(),
            bin: bindir(),
            run_as,
        };
        let out = cluster.pg(
            "initdb",
            &[
                "-D",
                cluster.data.to_str().expect("utf-8"),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb: {}", text(&out.stderr));
        let mut conf = vec![
            format!("unix_socket_directories = '{}'", cluster.root.display()),
            format!("port = {}", cluster.port),
            format!(
                "listen_addresses = '{}'",
                if settings.tcp { "127.0.0.1" } else { "" }
            ),
            "fsync = off".into(),
            "log_min_messages = warning".into(),
        ];
        conf.extend(settings.conf);
        let conf_path = cluster.data.join("postgresql.conf");
        let mut text_conf = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
        text_conf.push('\n');
        text_conf.push_str(&conf.join("\n"));
        text_conf.push('\n');
        std::fs::write(&conf_path, text_conf).expect("write postgresql.conf");
        if !settings.hba.is_empty() {
            let hba_path = cluster.data.join("pg_hba.conf");
            let old = std::fs::read_to_string(&hba_path).expect("pg_hba.conf");
            std::fs::write(&hba_path, format!("{}\n{old}", settings.hba.join("\n")))
                .expect("write pg_hba.conf");
        }
        for (name, contents, mode) in &settings.files {
            cluster.put_file(name, contents, *mode);
        }
        cluster.resume();
        cluster
    }

    /// A key=value connection string over the Unix socket, as the superuser.
    pub fn conninfo(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={dbname}",
            self.root.display(),
            self.port
        )
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn resume(&self) {
        let log = self.root.join("server.log");
        let out = self.pg_ctl(&[
            "-l",
            log.to_str().expect("utf-8"),
            "-w",
            "-t",
            "60",
            "start",
        ]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            text(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server (fast: connections are cut, as in an outage).
    pub fn pause(&self) {
        let out = self.pg_ctl(&["-m", "fast", "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop: {}", text(&out.stderr));
    }

    /// Creates a database and returns its connection string.
    pub fn create_db(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.conninfo(name)
    }

    /// Runs SQL through psql; returns its unaligned, tuples-only output. Panics on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.conninfo(db),
                "-c",
                sql,
            ])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "psql {sql}: {}", text(&out.stderr));
        text(&out.stdout).trim_end().to_owned()
    }

    /// Writes a file into the cluster's directory, owned by the server's user.
    pub fn put_file(&self, name: &str, contents: &[u8], mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.root.join(name);
        std::fs::write(&path, contents).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        if let Some(user) = self.run_as {
            chown(user, &path);
        }
        path
    }

    /// pg_ctl on this cluster's data directory.
    fn pg_ctl(&self, args: &[&str]) -> Output {
        let mut all = vec!["-D", self.data.to_str().expect("utf-8")];
        all.extend_from_slice(args);
        self.pg("pg_ctl", &all)
    }

    fn pg(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        cmd.args(args)
            .current_dir(&self.root)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn chown(user: &str, path: &Path) {
    let ok = Command::new("chown")
        .arg(user)
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "chown {user} {}", path.display());
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
