// SPDX-License-Identifier: AGPL-3.0-or-later
//! `spycraft db status`: where the schema stands, what the database holds, what waits in the
//! spool.

use std::fmt;
use std::path::Path;

use super::schema::{self, SchemaStatus};
use super::{block_on, PostgresError, Target};
use crate::sink::spool::{self, Backlog};

/// A snapshot of one database and one spool.
#[derive(Debug)]
pub struct DatabaseStatus {
    /// The server's address, without the password.
    pub server: String,
    /// The server's version.
    pub server_version: String,
    /// The schema's version against this spycraft's.
    pub schema: SchemaStatus,
    /// Rows in `cdr`, and its daily partitions.
    pub records: Option<i64>,
    /// The daily partitions, if any.
    pub partitions: Option<Partitions>,
    /// Per node: records and the last INVITE time.
    pub nodes: Vec<(String, i64, String)>,
    /// What waits in the spool, if there is one.
    pub spool: Option<Backlog>,
}

/// The daily partitions of `cdr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partitions {
    /// How many.
    pub count: i64,
    /// The first and last day, as PostgreSQL names them.
    pub first: Option<String>,
    /// The last day.
    pub last: Option<String>,
}

/// Reads the status of `target`, and of the spool at `spool_dir` without taking it over.
pub fn status(target: &Target, spool_dir: &Path) -> Result<DatabaseStatus, PostgresError> {
    let spool = spool::inspect(spool_dir)
        .map_err(|e| PostgresError::Config(format!("spool {}: {e}", spool_dir.display())))?;
    block_on(async {
        let client = target.connect().await?;
        let server_version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
        let schema = schema::status(&client).await?;
        let has_cdr: bool = client
            .query_one("SELECT to_regclass('cdr') IS NOT NULL", &[])
            .await?
            .get(0);
        let (mut records, mut partitions, mut nodes) = (None, None, Vec::new());
        if has_cdr {
            records = Some(
                client
                    .query_one("SELECT count(*) FROM cdr", &[])
                    .await?
                    .get(0),
            );
            let row = client
                .query_one(
                    "SELECT count(*), min(substr(c.relname, 6)), max(substr(c.relname, 6)) \
                     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                     WHERE i.inhparent = 'cdr'::regclass",
                    &[],
                )
                .await?;
            partitions = Some(Partitions {
                count: row.get(0),
                first: row.get(1),
                last: row.get(2),
            });
            for row in client
                .query(
                    "SELECT node, count(*), \
                     to_char(max(invite_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') \
                     FROM cdr GROUP BY node ORDER BY node",
                    &[],
                )
                .await?
            {
                nodes.push((row.get(0), row.get(1), row.get(2)));
            }
        }
        Ok(DatabaseStatus {
            server: target.describe(),
            server_version,
            schema,
            records,
            partitions,
            nodes,
            spool,
        })
    })
}

impl fmt::Display for DatabaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "database:   {} (PostgreSQL {})",
            self.server, self.server_version
        )?;
        let latest = self.schema.applied.last().map_or(0, |(v, _, _)| *v);
        writeln!(f, "schema:     version {latest}")?;
        for (version, name, at) in &self.schema.applied {
            writeln!(f, "  {version:>3}  {name}  (applied {at} UTC)")?;
        }
        for version in &self.schema.pending {
            writeln!(f, "  {version:>3}  pending: run `spycraft db migrate`")?;
        }
        if let Some(n) = self.records {
            writeln!(f, "records:    {n}")?;
        }
        if let Some(Partitions { count, first, last }) = &self.partitions {
            match (first, last) {
                (Some(first), Some(last)) => {
                    writeln!(f, "partitions: {count} daily, {first} to {last}")?
                }
                _ => writeln!(f, "partitions: none yet")?,
            }
        }
        for (node, n, last) in &self.nodes {
            writeln!(f, "  node {node}: {n} records, last INVITE {last} UTC")?;
        }
        match self.spool {
            Some(b) => writeln!(
                f,
                "spool:      {} records ({} KiB) waiting",
                b.records,
                b.bytes >> 10
            ),
            None => writeln!(f, "spool:      none"),
        }
    }
}
