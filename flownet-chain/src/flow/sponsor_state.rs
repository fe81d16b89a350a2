//! What a [`Sponsor`](super::Sponsor) must remember across restarts, in one
//! small SQLite file: its limits and fee budgets (token buckets), the
//! proof-of-work challenges already spent, the faucet grants co-signed but not
//! yet sealed, and the secret its challenges are authenticated with. Kept in
//! memory, a restart would refill every bucket and forget every spent
//! challenge: a drain would need only a way to restart the service.

use std::{
    path::Path,
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use flownet_core::Address;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// Errors of the state file.
#[derive(Debug, thiserror::Error)]
#[error("sponsor state: {0}")]
pub struct StateError(String);

fn db(e: rusqlite::Error) -> StateError {
    StateError(e.to_string())
}

/// Milliseconds since the Unix epoch: the buckets' clock, which (unlike
/// `Instant`) means the same after a restart.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One token bucket to take from: `capacity` tokens, refilled at `capacity`
/// per `period`; a take costs `cost` tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// What is limited (`accounts`, `fees`, …).
    pub scope: &'static str,
    /// Whose bucket (an IP, an address, or empty for the global one).
    pub key: String,
    pub cost: f64,
    pub capacity: f64,
    pub period: Duration,
}

impl Bucket {
    pub fn new(
        scope: &'static str,
        key: impl ToString,
        cost: f64,
        capacity: f64,
        period: Duration,
    ) -> Self {
        Self {
            scope,
            key: key.to_string(),
            cost,
            capacity,
            period,
        }
    }
}

/// A refused take: which bucket, and in how many milliseconds it holds enough.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    pub scope: &'static str,
    pub retry_after_ms: u64,
}

/// The sponsor's persisted state; see the module documentation.
#[derive(Debug)]
pub struct SponsorState {
    conn: Mutex<Connection>,
}

impl SponsorState {
    /// Opens (or creates) the state file at `path`, readable by its owner only.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StateError(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(db)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The file holds the challenges' secret.
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Self::init(conn)
    }

    /// A state that lasts as long as the process: for tests and in-process
    /// sponsors of one run.
    pub fn in_memory() -> Self {
        Self::init(Connection::open_in_memory().expect("an in-memory SQLite database"))
            .expect("the schema on an in-memory database")
    }

    fn init(conn: Connection) -> Result<Self, StateError> {
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS buckets (
                 scope TEXT NOT NULL, key TEXT NOT NULL,
                 tokens REAL NOT NULL, at_ms INTEGER NOT NULL, period_ms INTEGER NOT NULL,
                 PRIMARY KEY (scope, key));
             CREATE TABLE IF NOT EXISTS spent_challenges (
                 mac BLOB PRIMARY KEY, expires INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS faucet_reservations (
                 account TEXT PRIMARY KEY, until INTEGER NOT NULL);",
        )
        .map_err(db)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The secret the sponsor's challenges are authenticated with: made on
    /// first use and kept, so challenges handed out before a restart still
    /// verify after it.
    pub fn secret(&self) -> Result<[u8; 32], StateError> {
        let conn = self.conn();
        let got: Option<Vec<u8>> = conn
            .query_row("SELECT v FROM meta WHERE k = 'pow_secret'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)?;
        if let Some(v) = got.and_then(|v| <[u8; 32]>::try_from(v).ok()) {
            return Ok(v);
        }
        let mut secret = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret);
        conn.execute(
            "INSERT OR REPLACE INTO meta (k, v) VALUES ('pow_secret', ?1)",
            params![secret.to_vec()],
        )
        .map_err(db)?;
        Ok(secret)
    }

    /// Takes from every bucket of `buckets` at `now` (ms), or from none: the
    /// first that holds too little is the refusal.
    pub fn take_all(&self, buckets: &[Bucket], now: u64) -> Result<(), Exhausted> {
        let mut conn = self.conn();
        take_all_in(&mut conn, buckets, now).unwrap_or_else(|e| {
            // A state that cannot be written refuses rather than pays unmetered.
            tracing::error!(%e, "the sponsor's state file refused a write");
            Err(Exhausted {
                scope: "state",
                retry_after_ms: 1000,
            })
        })
    }

    /// Spends the challenge `mac` (good until `expires`, unix seconds) at
    /// `now`: false when it was spent before.
    pub fn spend_challenge(
        &self,
        mac: &[u8; 32],
        expires: u64,
        now: u64,
    ) -> Result<bool, StateError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM spent_challenges WHERE expires < ?1",
            params![now as i64],
        )
        .map_err(db)?;
        let n = conn
            .execute(
                "INSERT OR IGNORE INTO spent_challenges (mac, expires) VALUES (?1, ?2)",
                params![mac.to_vec(), expires as i64],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    /// Reserves the faucet grant of `account` until `until` (unix seconds):
    /// `Err(until)` of the live reservation when there is one.
    pub fn reserve_faucet(
        &self,
        account: Address,
        until: u64,
        now: u64,
    ) -> Result<Result<(), u64>, StateError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let held: Option<i64> = tx
            .query_row(
                "SELECT until FROM faucet_reservations WHERE account = ?1",
                params![account.to_string()],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        if let Some(held) = held.filter(|u| *u as u64 >= now) {
            return Ok(Err(held as u64));
        }
        tx.execute(
            "DELETE FROM faucet_reservations WHERE until < ?1",
            params![now as i64],
        )
        .map_err(db)?;
        tx.execute(
            "INSERT OR REPLACE INTO faucet_reservations (account, until) VALUES (?1, ?2)",
            params![account.to_string(), until as i64],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(Ok(()))
    }

    /// Drops the reservation of `account` (its transaction failed or was never sent).
    pub fn release_faucet(&self, account: Address) -> Result<(), StateError> {
        self.conn()
            .execute(
                "DELETE FROM faucet_reservations WHERE account = ?1",
                params![account.to_string()],
            )
            .map_err(db)?;
        Ok(())
    }
}

/// [`SponsorState::take_all`] in one immediate transaction of `conn`.
fn take_all_in(
    conn: &mut Connection,
    buckets: &[Bucket],
    now: u64,
) -> Result<Result<(), Exhausted>, rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut updates = Vec::with_capacity(buckets.len());
    for b in buckets {
        let row: Option<(f64, i64)> = tx
            .query_row(
                "SELECT tokens, at_ms FROM buckets WHERE scope = ?1 AND key = ?2",
                params![b.scope, b.key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let per_ms = b.capacity / (b.period.as_millis().max(1) as f64);
        let (tokens, at) = row.unwrap_or((b.capacity, now as i64));
        let at = (at.max(0) as u64).min(now);
        let tokens = (tokens + (now - at) as f64 * per_ms).min(b.capacity);
        if tokens < b.cost {
            let retry_after_ms = if b.cost > b.capacity || per_ms <= 0.0 {
                b.period.as_millis() as u64
            } else {
                ((b.cost - tokens) / per_ms).ceil() as u64
            };
            return Ok(Err(Exhausted {
                scope: b.scope,
                retry_after_ms,
            }));
        }
        updates.push((b, tokens - b.cost));
    }
    for (b, tokens) in updates {
        tx.execute(
            "INSERT OR REPLACE INTO buckets (scope, key, tokens, at_ms, period_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                b.scope,
                b.key,
                tokens,
                now as i64,
                b.period.as_millis() as i64
            ],
        )?;
    }
    // Buckets idle for a whole period are full again: their rows say
    // nothing, and dropping them keeps the file bounded by one period's
    // clients.
    tx.execute(
        "DELETE FROM buckets WHERE at_ms + period_ms < ?1",
        params![now as i64],
    )?;
    tx.commit()?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(cost: f64) -> Bucket {
        Bucket::new("fees", "", cost, 10.0, Duration::from_secs(10))
    }

    #[test]
    fn buckets_refill_and_refuse_all_or_nothing() {
        let s = SponsorState::in_memory();
        s.take_all(&[b(6.0)], 0).unwrap();
        assert_eq!(
            s.take_all(&[b(6.0)], 0),
            Err(Exhausted {
                scope: "fees",
                retry_after_ms: 2000
            })
        );
        s.take_all(&[b(6.0)], 2000).unwrap();
        // Two buckets: the second refuses, the first keeps its tokens.
        let ip = Bucket::new("fees_ip", "1.2.3.4", 1.0, 1.0, Duration::from_secs(60));
        s.take_all(std::slice::from_ref(&ip), 2000).unwrap();
        assert_eq!(
            s.take_all(&[b(1.0), ip], 3000).unwrap_err().scope,
            "fees_ip"
        );
        s.take_all(&[b(1.0)], 3000).unwrap();
        // More than the capacity is never granted.
        assert!(s.take_all(&[b(11.0)], 1_000_000).is_err());
    }

    #[test]
    fn the_state_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sponsor.sqlite");
        let (secret, mac) = {
            let s = SponsorState::open(&path).unwrap();
            s.take_all(&[b(10.0)], 0).unwrap();
            assert!(s.spend_challenge(&[1; 32], 100, 0).unwrap());
            s.reserve_faucet(Address([1; 8]), 50, 0).unwrap().unwrap();
            (s.secret().unwrap(), [1; 32])
        };
        let s = SponsorState::open(&path).unwrap();
        assert_eq!(s.secret().unwrap(), secret);
        assert!(s.take_all(&[b(1.0)], 0).is_err());
        assert!(!s.spend_challenge(&mac, 100, 0).unwrap());
        assert_eq!(s.reserve_faucet(Address([1; 8]), 80, 10).unwrap(), Err(50));
        // Expired, or released, the grant can be reserved again.
        s.reserve_faucet(Address([1; 8]), 80, 51).unwrap().unwrap();
        s.release_faucet(Address([1; 8])).unwrap();
        s.reserve_faucet(Address([1; 8]), 90, 52).unwrap().unwrap();
    }
}
