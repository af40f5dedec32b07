// SPDX-License-Identifier: AGPL-3.0-or-later
//! The database schema as versioned migrations embedded in the binary, applied under an
//! advisory lock so several sensors starting together apply each one exactly once.

use tokio_postgres::Client;

use super::PostgresError;

/// One step of the schema.
#[derive(Debug)]
pub struct Migration {
    /// Its number; applied in order.
    pub version: i32,
    /// What it does, for messages.
    pub name: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// Every migration, in order. Released ones are never edited: the checksum check refuses a
/// database whose history differs from the binary's.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "cdr table, daily partitions, sensor_stats",
        sql: include_str!("migrations/0001_cdr.sql"),
    },
    Migration {
        version: 2,
        name: "calls and cdr_asterisk views",
        sql: include_str!("migrations/0002_views.sql"),
    },
    Migration {
        version: 3,
        name: "cdr: the call model's delays, hold, forks and transfers",
        sql: include_str!("migrations/0003_call_model.sql"),
    },
    Migration {
        version: 4,
        name: "cdr: indexes for number and user prefix searches",
        sql: include_str!("migrations/0004_search.sql"),
    },
    Migration {
        version: 5,
        name: "sip_message table; cdr: rated_prefix and cost",
        sql: include_str!("migrations/0005_messages_and_rating.sql"),
    },
    Migration {
        version: 6,
        name: "cdr: the HEP agent that delivered the call",
        sql: include_str!("migrations/0006_agent.sql"),
    },
];

/// Key of the session advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x5350_5943_5241_4654; // "SPYCRAFT"

/// Where a database stands against this binary's migrations.
#[derive(Debug, PartialEq, Eq)]
pub struct SchemaStatus {
    /// (version, name, applied at) of each applied migration.
    pub applied: Vec<(i32, String, String)>,
    /// Versions this binary has and the database does not.
    pub pending: Vec<i32>,
}

/// Applies what is pending; returns the versions applied now.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, PostgresError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = migrate_locked(client).await;
    // Released even if a migration failed; the lock dies with the session anyway.
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    result
}

async fn migrate_locked(client: &mut Client) -> Result<Vec<i32>, PostgresError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS spycraft_migrations (
                 version    integer PRIMARY KEY,
                 name       text        NOT NULL,
                 checksum   text        NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let applied = applied_checksums(client).await?;
    let mut done = Vec::new();
    for m in MIGRATIONS {
        if applied.iter().any(|(v, _)| *v == m.version) {
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(m.sql)
            .await
            .map_err(|e| PostgresError::Migration(m.version, super::PgError(e)))?;
        tx.execute(
            "INSERT INTO spycraft_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &checksum(m.sql)],
        )
        .await?;
        tx.commit().await?;
        done.push(m.version);
    }
    Ok(done)
}

/// Reads the applied versions and checks them against this binary.
pub async fn status(client: &Client) -> Result<SchemaStatus, PostgresError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('spycraft_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    let mut applied = Vec::new();
    if exists {
        applied_checksums(client).await?;
        for row in client
            .query(
                "SELECT version, name, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') \
                 FROM spycraft_migrations ORDER BY version",
                &[],
            )
            .await?
        {
            applied.push((row.get(0), row.get(1), row.get(2)));
        }
    }
    let pending = MIGRATIONS
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.iter().any(|(a, _, _)| a == v))
        .collect();
    Ok(SchemaStatus { applied, pending })
}

/// Applied (version, checksum) pairs; an error if the database is ahead of this binary or
/// was migrated with different SQL.
async fn applied_checksums(client: &Client) -> Result<Vec<(i32, String)>, PostgresError> {
    let rows = client
        .query(
            "SELECT version, checksum FROM spycraft_migrations ORDER BY version",
            &[],
        )
        .await?;
    let applied: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for (version, sum) in &applied {
        match MIGRATIONS.iter().find(|m| m.version == *version) {
            None => return Err(PostgresError::SchemaTooNew(*version)),
            Some(m) if checksum(m.sql) != *sum => {
                return Err(PostgresError::SchemaDiffers(*version))
            }
            Some(_) => {}
        }
    }
    Ok(applied)
}

/// FNV-1a of the migration's text: enough to notice an edited migration.
fn checksum(sql: &str) -> String {
    format!(
        "{:016x}",
        crate::fnv::fnv1a(crate::fnv::START, sql.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_ascend_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
            assert!(
                m.sql.starts_with("-- SPDX-License-Identifier"),
                "{}",
                m.name
            );
        }
    }
}
