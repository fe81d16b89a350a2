//! The embedded ledger: SQLite through rusqlite, one file shared by every process on
//! the machine.
//!
//! Each envelope is applied inside one `BEGIN IMMEDIATE` transaction, so writers from
//! different processes are serialised by SQLite's lock and readers see only committed
//! state (WAL). Records are stored as JSON beside the columns queries filter on.
//!
//! Each envelope's record also stores the state digest after it and a link of a hash
//! chain through the log (see `digest`); the head of that chain is checked against the
//! stored rows whenever the file is opened, and `EmbeddedLedger::verify` replays the
//! whole log.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use flownet_core::{
    Account, Address, Digest32, Globals, Ledger, LedgerConfig, LedgerId, LedgerInfo, Node,
    OutputNft, Rating, Receipt, SignedEnvelope, StateStore, Task, TaskId, TaskQuery, TaskStatus,
    crypto, rank_nodes, rules,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    Clock, Error, Result, SystemClock,
    digest::{self, Digesting, Head},
};

/// Version 2 added the state digests and the chain; a version 1 file is migrated when
/// it is opened (`migrate_from_1`).
pub(crate) const SCHEMA_VERSION: &str = "2";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (address TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (owner TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY, node TEXT NOT NULL, requester TEXT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_by_node ON tasks (node, status, id);
CREATE INDEX IF NOT EXISTS tasks_by_requester ON tasks (requester, id);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status);
CREATE TABLE IF NOT EXISTS ratings (task INTEGER NOT NULL, rater TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (task, rater));
CREATE TABLE IF NOT EXISTS nfts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS nfts_by_owner ON nfts (owner, id);
CREATE TABLE IF NOT EXISTS envelopes (
    height INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE, signer TEXT NOT NULL, sequence INTEGER NOT NULL,
    action TEXT NOT NULL, envelope TEXT NOT NULL, error TEXT, at INTEGER NOT NULL,
    state TEXT, chain TEXT);
";

/// One applied envelope, accepted or rejected after authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EnvelopeRecord {
    pub height: u64,
    pub hash: Digest32,
    pub envelope: SignedEnvelope,
    /// The rule's rejection, if the action was refused (its sequence number is spent).
    pub error: Option<String>,
    pub at: u64,
}

/// The embedded ledger. Cheap to share behind an `Arc`; open it once per process.
#[derive(Debug)]
pub struct EmbeddedLedger {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    conn: Mutex<Connection>,
    id: LedgerId,
    config: LedgerConfig,
    clock: Arc<dyn Clock>,
    /// Counts the envelopes applied through this handle, for [`Ledger::changed`].
    applied: tokio::sync::watch::Sender<u64>,
}

/// The one counter of applied envelopes per ledger file in this process, so every
/// handle opened on the same file wakes the same waiters.
fn applied_counter(path: &Path) -> tokio::sync::watch::Sender<u64> {
    static COUNTERS: std::sync::OnceLock<
        Mutex<std::collections::HashMap<PathBuf, tokio::sync::watch::Sender<u64>>>,
    > = std::sync::OnceLock::new();
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    COUNTERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(key)
        .or_insert_with(|| tokio::sync::watch::Sender::new(0))
        .clone()
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    // Another process may hold the write lock for a moment: wait rather than fail.
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a committed envelope survives power loss, not only a process crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    Ok(serde_json::to_string(v)?)
}

fn from_json<T: DeserializeOwned>(s: &str) -> Result<T> {
    Ok(serde_json::from_str(s)?)
}

impl EmbeddedLedger {
    /// Creates a new ledger file with `config`. Fails if the file already holds one.
    pub fn create(path: impl AsRef<Path>, config: LedgerConfig) -> Result<Self> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Ledger(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut conn = open_connection(path)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        let existing: Option<String> = tx
            .query_row("SELECT value FROM meta WHERE key = 'ledger_id'", [], |r| {
                r.get(0)
            })
            .optional()?;
        if existing.is_some() {
            return Err(Error::Ledger(format!(
                "{} already holds a ledger",
                path.display()
            )));
        }
        let mut nonce = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let id = Digest32(crypto::tagged_hash(
            crypto::LEDGER_TAG,
            &[b"embedded", &nonce, to_json(&config)?.as_bytes()],
        ));
        for (k, v) in [
            ("schema_version", SCHEMA_VERSION.to_owned()),
            ("ledger_id", id.to_hex()),
            ("config", to_json(&config)?),
            ("globals", to_json(&Globals::default())?),
        ] {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                params![k, v],
            )?;
        }
        start_chain(&tx, &id, 0)?;
        tx.commit()?;
        drop(conn);
        Self::open(path)
    }

    /// Opens an existing ledger file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with_clock(path, Arc::new(SystemClock))
    }

    /// Opens the ledger at `path`, creating it with `config` if the file does not exist.
    pub fn open_or_create(path: impl AsRef<Path>, config: LedgerConfig) -> Result<Self> {
        if path.as_ref().exists() {
            Self::open(path)
        } else {
            Self::create(path, config)
        }
    }

    /// Opens an existing ledger file that reads time from `clock`.
    pub fn open_with_clock(path: impl AsRef<Path>, clock: Arc<dyn Clock>) -> Result<Self> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::Ledger(format!(
                "no ledger at {} (create one with `flownet ledger init`)",
                path.display()
            )));
        }
        let conn = open_connection(path)?;
        let meta = |key: &str| -> Result<String> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?
                .ok_or_else(|| {
                    Error::Ledger(format!(
                        "{} is not a FlowNet ledger (no {key})",
                        path.display()
                    ))
                })
        };
        let version = meta("schema_version")?;
        let id =
            Digest32::from_hex(&meta("ledger_id")?).map_err(|e| Error::Ledger(e.to_string()))?;
        let config: LedgerConfig = from_json(&meta("config")?)?;
        let mut conn = conn;
        match version.as_str() {
            SCHEMA_VERSION => {}
            "1" => migrate_from_1(&mut conn, &id)?,
            _ => {
                return Err(Error::Ledger(format!(
                    "ledger schema {version} is not supported (expected {SCHEMA_VERSION})"
                )));
            }
        }
        check_head(&conn)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                conn: Mutex::new(conn),
                id,
                config,
                clock,
                applied: applied_counter(path),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn id(&self) -> LedgerId {
        self.inner.id
    }

    pub fn config(&self) -> &LedgerConfig {
        &self.inner.config
    }

    /// The envelopes applied after `height`, oldest first: the ledger's event feed.
    pub async fn envelopes_since(
        &self,
        height: u64,
        limit: u32,
    ) -> flownet_core::Result<Vec<EnvelopeRecord>> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT height, hash, envelope, error, at FROM envelopes WHERE height > ?1 ORDER BY height LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![height as i64, limit], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<String>>(3)?, r.get::<_, i64>(4)?))
            })?;
            rows.map(|row| {
                let (height, hash, env, error, at) = row?;
                Ok(EnvelopeRecord {
                    height: height as u64,
                    hash: Digest32::from_hex(&hash).map_err(|e| Error::Ledger(e.to_string()))?,
                    envelope: from_json(&env)?,
                    error,
                    at: at as u64,
                })
            })
            .collect()
        })
        .await
    }

    /// Runs a read on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> flownet_core::Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await
        .map_err(|e| flownet_core::Error::Storage(format!("ledger thread failed: {e}")))?
        .map_err(Into::into)
    }

    fn send_blocking(inner: &Inner, env: &SignedEnvelope) -> flownet_core::Result<Receipt> {
        let mut conn = inner.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::from)?;
        let now = inner.clock.now();
        let head = read_head(&tx, "head")?;
        let mut store = Digesting::new(SqlStore { conn: &tx }, head.state);
        let signer = env.envelope.signer;
        let sequence_before = store.account(signer)?.map(|a| a.sequence);
        let result = rules::execute(&mut store, &inner.config, &inner.id, env, now);
        if let Err(flownet_core::Error::Storage(_)) = &result {
            // Dropping the transaction rolls everything back.
            return result.map(|_| unreachable!());
        }
        // Authenticated envelopes (accepted or rejected by a rule) spend a sequence
        // number and are recorded; forged or replayed ones leave no trace.
        let consumed = store.account(signer)?.map(|a| a.sequence) != sequence_before;
        let mut height = 0;
        if consumed {
            let hash = env.hash();
            let error = result.as_ref().err().map(ToString::to_string);
            height = head.height + 1;
            let next = head.next(height, &hash, now, error.as_deref(), store.digest);
            tx.execute(
                "INSERT INTO envelopes (height, hash, signer, sequence, action, envelope, error, at, state, chain)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    height as i64,
                    hash.to_hex(),
                    signer.to_string(),
                    env.envelope.sequence as i64,
                    env.envelope.action.name(),
                    to_json(env)?,
                    error,
                    now as i64,
                    next.state.to_hex(),
                    next.chain.to_hex(),
                ],
            )
            .map_err(Error::from)?;
            write_meta(&tx, "head", &to_json(&next)?)?;
        }
        tx.commit().map_err(Error::from)?;
        let outcome = result?;
        Ok(Receipt {
            hash: env.hash(),
            signer,
            sequence: env.envelope.sequence,
            action: env.envelope.action.name().into(),
            outcome,
            at: now,
            height,
        })
    }
}

#[async_trait]
impl Ledger for EmbeddedLedger {
    async fn info(&self) -> flownet_core::Result<LedgerInfo> {
        let (id, config, now) = (
            self.inner.id,
            self.inner.config.clone(),
            self.inner.clock.now(),
        );
        self.read(move |c| {
            let globals: String =
                c.query_row("SELECT value FROM meta WHERE key = 'globals'", [], |r| {
                    r.get(0)
                })?;
            let height: i64 =
                c.query_row("SELECT COALESCE(MAX(height), 0) FROM envelopes", [], |r| {
                    r.get(0)
                })?;
            Ok(LedgerInfo {
                id,
                network: "embedded".into(),
                config,
                now,
                height: height as u64,
                globals: from_json(&globals)?,
            })
        })
        .await
    }

    async fn send(&self, envelope: SignedEnvelope) -> flownet_core::Result<Receipt> {
        let inner = self.inner.clone();
        let receipt = tokio::task::spawn_blocking(move || Self::send_blocking(&inner, &envelope))
            .await
            .map_err(|e| flownet_core::Error::Storage(format!("ledger thread failed: {e}")))??;
        self.inner.applied.send_modify(|n| *n += 1);
        Ok(receipt)
    }

    fn changed(&self) -> flownet_core::LedgerChange {
        let mut rx = self.inner.applied.subscribe();
        Box::pin(async move {
            let _ = rx.changed().await;
        })
    }

    async fn account(&self, address: Address) -> flownet_core::Result<Option<Account>> {
        self.read(move |c| {
            get_json(
                c,
                "SELECT data FROM accounts WHERE address = ?1",
                address.to_string(),
            )
        })
        .await
    }

    async fn node(&self, owner: Address) -> flownet_core::Result<Option<Node>> {
        self.read(move |c| {
            get_json(
                c,
                "SELECT data FROM nodes WHERE owner = ?1",
                owner.to_string(),
            )
        })
        .await
    }

    async fn nodes(&self) -> flownet_core::Result<Vec<Node>> {
        let mut nodes: Vec<Node> = self
            .read(|c| all_json(c, "SELECT data FROM nodes", []))
            .await?;
        rank_nodes(&mut nodes);
        Ok(nodes)
    }

    async fn task(&self, id: TaskId) -> flownet_core::Result<Option<Task>> {
        self.read(move |c| get_json(c, "SELECT data FROM tasks WHERE id = ?1", id as i64))
            .await
    }

    async fn tasks(&self, q: TaskQuery) -> flownet_core::Result<Vec<Task>> {
        self.read(move |c| {
            let sql = "SELECT data FROM tasks WHERE (?1 IS NULL OR node = ?1) AND (?2 IS NULL OR requester = ?2)
                       AND (?3 IS NULL OR status = ?3) AND id > ?4 ORDER BY id LIMIT ?5";
            all_json(
                c,
                sql,
                params![
                    q.node.map(|a| a.to_string()),
                    q.requester.map(|a| a.to_string()),
                    q.status.map(|s| s.as_str()),
                    q.after.unwrap_or(0) as i64,
                    q.limit.map_or(-1, i64::from)
                ],
            )
        })
        .await
    }

    async fn task_counts(&self) -> flownet_core::Result<Vec<(TaskStatus, u64)>> {
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT status, COUNT(*) FROM tasks GROUP BY status")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let mut counts: Vec<(TaskStatus, u64)> =
                TaskStatus::ALL.iter().map(|s| (*s, 0)).collect();
            for row in rows {
                let (status, n) = row?;
                let slot = counts
                    .iter_mut()
                    .find(|(s, _)| s.as_str() == status)
                    .ok_or_else(|| Error::Ledger(format!("unknown task status {status:?}")))?;
                slot.1 = n as u64;
            }
            Ok(counts)
        })
        .await
    }

    async fn ratings(&self, task: TaskId) -> flownet_core::Result<Vec<Rating>> {
        self.read(move |c| {
            all_json(
                c,
                "SELECT data FROM ratings WHERE task = ?1 ORDER BY rowid",
                [task as i64],
            )
        })
        .await
    }

    async fn nfts(&self, owner: Address) -> flownet_core::Result<Vec<OutputNft>> {
        self.read(move |c| {
            all_json(
                c,
                "SELECT data FROM nfts WHERE owner = ?1 ORDER BY id",
                [owner.to_string()],
            )
        })
        .await
    }
}

fn write_meta(c: &Connection, key: &str, value: &str) -> Result<()> {
    c.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])?;
    Ok(())
}

/// The chain's `head` or `genesis` from meta.
pub(crate) fn read_head(c: &Connection, key: &str) -> Result<Head> {
    let value: Option<String> = c
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    let value = value.ok_or_else(|| {
        Error::Tampered(format!(
            "the ledger has no chain {key} (it was removed from meta)"
        ))
    })?;
    serde_json::from_str(&value)
        .map_err(|e| Error::Tampered(format!("the chain {key} in meta is not readable: {e}")))
}

/// Starts the chain at `height` from the state stored now: its genesis and head.
fn start_chain(c: &Connection, id: &LedgerId, height: u64) -> Result<()> {
    let (state, _) = digest::stored_digest(c)?;
    let genesis = to_json(&Head::genesis(id, height, state))?;
    write_meta(c, "genesis", &genesis)?;
    write_meta(c, "head", &genesis)
}

/// Refuses a file whose rows are not the state its log's head says they are, or whose
/// head is not its last envelope's: the file was edited outside the ledger's code.
fn check_head(conn: &Connection) -> Result<()> {
    // One read transaction: a consistent snapshot while other processes write.
    let tx = conn.unchecked_transaction()?;
    let head = read_head(&tx, "head")?;
    let genesis = read_head(&tx, "genesis")?;
    let (state, _) = digest::stored_digest(&tx)?;
    if state != head.state {
        return Err(Error::Tampered(format!(
            "its rows digest to {state}, its log's head says {}",
            head.state
        )));
    }
    let last: Option<(i64, Option<String>, Option<String>)> = tx
        .query_row(
            "SELECT height, state, chain FROM envelopes ORDER BY height DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let last_height = last.as_ref().map_or(0, |l| l.0 as u64);
    let consistent = if head.height == genesis.height {
        head == genesis && last_height == genesis.height
    } else {
        last.is_some_and(|(h, s, c)| {
            h as u64 == head.height
                && s.as_deref() == Some(&*head.state.to_hex())
                && c.as_deref() == Some(&*head.chain.to_hex())
        })
    };
    if !consistent {
        return Err(Error::Tampered(format!(
            "its log's head (height {}) is not its last envelope (height {last_height})",
            head.height
        )));
    }
    Ok(())
}

/// Migrates a version 1 file (no digests) to version 2: the records are rewritten in
/// this version's encoding and the chain starts from the state stored now, after the
/// last envelope. What happened before is trusted as found (`verify` still replays it
/// and compares the result with the state the chain starts from).
fn migrate_from_1(conn: &mut Connection, id: &LedgerId) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: String = tx.query_row(
        "SELECT value FROM meta WHERE key = 'schema_version'",
        [],
        |r| r.get(0),
    )?;
    if version == SCHEMA_VERSION {
        // Another process migrated it while this one waited for the lock.
        return Ok(());
    }
    tx.execute_batch(
        "ALTER TABLE envelopes ADD COLUMN state TEXT; ALTER TABLE envelopes ADD COLUMN chain TEXT;",
    )?;
    rewrite_records(&tx)?;
    let height: i64 = tx.query_row("SELECT COALESCE(MAX(height), 0) FROM envelopes", [], |r| {
        r.get(0)
    })?;
    start_chain(&tx, id, height as u64)?;
    write_meta(&tx, "schema_version", SCHEMA_VERSION)?;
    tx.commit()?;
    tracing::info!(
        height,
        "migrated the ledger file to schema {SCHEMA_VERSION}: its chain starts here"
    );
    Ok(())
}

/// Rewrites every record as this version writes it (fields added since with their
/// defaults), so the rows hash as the rulebook's writes and a replay would.
fn rewrite_records(c: &Connection) -> Result<()> {
    fn each<T: DeserializeOwned>(
        c: &Connection,
        sql: &str,
        mut f: impl FnMut(i64, T) -> Result<()>,
    ) -> Result<()> {
        let rows: Vec<(i64, String)> = c
            .prepare(sql)?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter()
            .try_for_each(|(rowid, data)| f(rowid, from_json(&data)?))
    }
    each(
        c,
        "SELECT rowid, data FROM accounts",
        |rowid, a: Account| {
            c.execute(
                "UPDATE accounts SET data = ?2 WHERE rowid = ?1",
                params![rowid, to_json(&a)?],
            )?;
            Ok(())
        },
    )?;
    each(c, "SELECT rowid, data FROM nodes", |rowid, n: Node| {
        c.execute(
            "UPDATE nodes SET data = ?2 WHERE rowid = ?1",
            params![rowid, to_json(&n)?],
        )?;
        Ok(())
    })?;
    each(c, "SELECT id, data FROM tasks", |id, t: Task| {
        c.execute(
            "UPDATE tasks SET node = ?2, requester = ?3, status = ?4, data = ?5 WHERE id = ?1",
            params![
                id,
                t.node.to_string(),
                t.requester.to_string(),
                t.status.as_str(),
                to_json(&t)?
            ],
        )?;
        Ok(())
    })?;
    each(c, "SELECT rowid, data FROM ratings", |rowid, r: Rating| {
        c.execute(
            "UPDATE ratings SET data = ?2 WHERE rowid = ?1",
            params![rowid, to_json(&r)?],
        )?;
        Ok(())
    })?;
    each(c, "SELECT id, data FROM nfts", |id, n: OutputNft| {
        c.execute(
            "UPDATE nfts SET owner = ?2, data = ?3 WHERE id = ?1",
            params![id, n.owner.to_string(), to_json(&n)?],
        )?;
        Ok(())
    })?;
    each(
        c,
        "SELECT rowid, value FROM meta WHERE key = 'globals'",
        |_, g: Globals| write_meta(c, "globals", &to_json(&g)?),
    )?;
    each(
        c,
        "SELECT rowid, value FROM meta WHERE key = 'config'",
        |_, g: LedgerConfig| write_meta(c, "config", &to_json(&g)?),
    )
}

fn get_json<T: DeserializeOwned>(
    c: &Connection,
    sql: &str,
    key: impl rusqlite::ToSql,
) -> Result<Option<T>> {
    c.query_row(sql, [key], |r| r.get::<_, String>(0))
        .optional()?
        .map(|s| from_json(&s))
        .transpose()
}

fn all_json<T: DeserializeOwned>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<T>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(params, |r| r.get::<_, String>(0))?;
    rows.map(|s| from_json(&s?)).collect()
}

/// The rulebook's view of one SQLite transaction.
struct SqlStore<'c> {
    conn: &'c Connection,
}

impl SqlStore<'_> {
    fn get<T: DeserializeOwned>(
        &self,
        sql: &str,
        key: impl rusqlite::ToSql,
    ) -> flownet_core::Result<Option<T>> {
        Ok(get_json(self.conn, sql, key)?)
    }

    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> flownet_core::Result<()> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(params))
            .map_err(Error::from)?;
        Ok(())
    }
}

impl StateStore for SqlStore<'_> {
    fn account(&self, a: Address) -> flownet_core::Result<Option<Account>> {
        self.get(
            "SELECT data FROM accounts WHERE address = ?1",
            a.to_string(),
        )
    }
    fn put_account(&mut self, a: &Account) -> flownet_core::Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO accounts (address, data) VALUES (?1, ?2)",
            params![a.address.to_string(), to_json(a)?],
        )
    }
    fn node(&self, owner: Address) -> flownet_core::Result<Option<Node>> {
        self.get("SELECT data FROM nodes WHERE owner = ?1", owner.to_string())
    }
    fn put_node(&mut self, n: &Node) -> flownet_core::Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO nodes (owner, data) VALUES (?1, ?2)",
            params![n.owner.to_string(), to_json(n)?],
        )
    }
    fn task(&self, id: TaskId) -> flownet_core::Result<Option<Task>> {
        self.get("SELECT data FROM tasks WHERE id = ?1", id as i64)
    }
    fn put_task(&mut self, t: &Task) -> flownet_core::Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO tasks (id, node, requester, status, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![t.id as i64, t.node.to_string(), t.requester.to_string(), t.status.as_str(), to_json(t)?],
        )
    }
    fn rating(&self, task: TaskId, rater: Address) -> flownet_core::Result<Option<Rating>> {
        let s: Option<String> = self
            .conn
            .query_row(
                "SELECT data FROM ratings WHERE task = ?1 AND rater = ?2",
                params![task as i64, rater.to_string()],
                |r| r.get(0),
            )
            .optional()
            .map_err(Error::from)?;
        Ok(s.map(|s| from_json(&s)).transpose()?)
    }
    fn put_rating(&mut self, r: &Rating) -> flownet_core::Result<()> {
        self.exec(
            "INSERT INTO ratings (task, rater, data) VALUES (?1, ?2, ?3)",
            params![r.task as i64, r.rater.to_string(), to_json(r)?],
        )
    }
    fn put_nft(&mut self, n: &OutputNft) -> flownet_core::Result<()> {
        self.exec(
            "INSERT INTO nfts (id, owner, data) VALUES (?1, ?2, ?3)",
            params![n.id as i64, n.owner.to_string(), to_json(n)?],
        )
    }
    fn globals(&self) -> flownet_core::Result<Globals> {
        self.get("SELECT value FROM meta WHERE key = ?1", "globals")?
            .ok_or_else(|| flownet_core::Error::Storage("ledger has no globals".into()))
    }
    fn put_globals(&mut self, g: &Globals) -> flownet_core::Result<()> {
        self.exec(
            "UPDATE meta SET value = ?1 WHERE key = 'globals'",
            [to_json(g)?],
        )
    }
    fn savepoint(&mut self) -> flownet_core::Result<()> {
        Ok(self
            .conn
            .execute_batch("SAVEPOINT action")
            .map_err(Error::from)?)
    }
    fn rollback_to_savepoint(&mut self) -> flownet_core::Result<()> {
        Ok(self
            .conn
            .execute_batch("ROLLBACK TO action; RELEASE action")
            .map_err(Error::from)?)
    }
    fn release_savepoint(&mut self) -> flownet_core::Result<()> {
        Ok(self
            .conn
            .execute_batch("RELEASE action")
            .map_err(Error::from)?)
    }
}
