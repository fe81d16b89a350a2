//! `EmbeddedLedger::verify`: replays a ledger file's log from its first envelope through
//! the rulebook, in memory, and names the first place where the file disagrees.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use flownet_core::{
    Digest32, LedgerConfig, LedgerId, SignedEnvelope, StateStore, memory::MemoryStore, rules,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use crate::{
    EmbeddedLedger, Error, Mismatch, Result,
    digest::{self, Cell, Digesting, Head, Row},
    embedded::{SCHEMA_VERSION, read_head},
};

/// What [`EmbeddedLedger::verify`] checked and the first mismatch it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Whether the whole file agrees with its log.
    pub ok: bool,
    pub path: PathBuf,
    pub ledger: LedgerId,
    /// The envelopes replayed (up to the mismatch, if any).
    pub envelopes: u64,
    /// The height where the chain starts: 0, or the last envelope of a file migrated
    /// from before the chain (earlier envelopes are replayed, but carry no digest).
    pub genesis_height: u64,
    /// The rows of the state compared with the replay's (0 when a mismatch came first).
    pub rows: u64,
    /// The state digest the replay ended with.
    pub state: Digest32,
    /// The chain's last link the replay ended with.
    pub chain: Digest32,
    pub mismatch: Option<Mismatch>,
}

impl VerifyReport {
    /// The report, or [`Error::Mismatch`] with its first mismatch.
    pub fn into_result(self) -> Result<Self> {
        match self.mismatch {
            Some(m) => Err(Error::Mismatch(Box::new(m))),
            None => Ok(self),
        }
    }
}

/// One envelope row, as stored.
struct Stored {
    height: i64,
    hash: String,
    signer: String,
    sequence: i64,
    action: String,
    envelope: String,
    error: Option<String>,
    at: i64,
    state: Option<String>,
    chain: Option<String>,
}

impl Stored {
    fn mismatch(&self, reason: impl Into<String>) -> Mismatch {
        Mismatch::Envelope {
            height: self.height as u64,
            hash: self.hash.clone(),
            signer: self.signer.clone(),
            sequence: self.sequence,
            action: self.action.clone(),
            reason: reason.into(),
        }
    }
}

impl EmbeddedLedger {
    /// Replays the log of the ledger file at `path` from its first envelope, through
    /// the rulebook into an in-memory store at each envelope's recorded time, and
    /// compares: each envelope's hash, outcome, state digest and chain link, the
    /// chain's head, and finally every stored row with the replayed state. The file is
    /// opened read-only and without the check [`EmbeddedLedger::open`] makes, so a
    /// file that check refuses can be examined. A mismatch is in the report (the
    /// first one only); errors are for files that cannot be read at all.
    pub fn verify(path: impl AsRef<Path>) -> Result<VerifyReport> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::Ledger(format!("no ledger at {}", path.display())));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // One read transaction: the snapshot of one moment while other processes write.
        let tx = conn.unchecked_transaction()?;
        let meta = |key: &str| -> Result<String> {
            tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?
                .ok_or_else(|| {
                    Error::Ledger(format!(
                        "{} is not a FlowNet ledger (no {key})",
                        path.display()
                    ))
                })
        };
        match meta("schema_version")?.as_str() {
            SCHEMA_VERSION => {}
            "1" => {
                return Err(Error::Ledger(format!(
                    "{} is a ledger of schema 1, which keeps no digests: open it once with this flownet (any command on it migrates it), then verify",
                    path.display()
                )));
            }
            v => {
                return Err(Error::Ledger(format!(
                    "ledger schema {v} is not supported (expected {SCHEMA_VERSION})"
                )));
            }
        }
        let id =
            Digest32::from_hex(&meta("ledger_id")?).map_err(|e| Error::Ledger(e.to_string()))?;
        let config: LedgerConfig = serde_json::from_str(&meta("config")?)?;
        let mut replay = Replay::new(&tx, path, id, config);
        let mismatch = match replay.run() {
            Ok(()) => None,
            Err(Found::Mismatch(m)) => Some(m),
            Err(Found::Error(e)) => return Err(e),
        };
        Ok(replay.report(mismatch))
    }
}

/// The replay in progress.
struct Replay<'c> {
    conn: &'c Connection,
    path: PathBuf,
    id: LedgerId,
    config: LedgerConfig,
    store: Digesting<MemoryStore>,
    head: Head,
    envelopes: u64,
    genesis_height: u64,
    rows: u64,
}

impl<'c> Replay<'c> {
    fn new(conn: &'c Connection, path: &Path, id: LedgerId, config: LedgerConfig) -> Self {
        let store = MemoryStore::default();
        let mut digest = Digest32::default();
        for row in meta_rows(&id, &config, &store) {
            digest::add(&mut digest, &row.hash());
        }
        Self {
            conn,
            path: path.to_owned(),
            head: Head::genesis(&id, 0, digest),
            id,
            config,
            store: Digesting::new(store, digest),
            envelopes: 0,
            genesis_height: 0,
            rows: 0,
        }
    }

    fn report(self, mismatch: Option<Mismatch>) -> VerifyReport {
        VerifyReport {
            ok: mismatch.is_none(),
            path: self.path,
            ledger: self.id,
            envelopes: self.envelopes,
            genesis_height: self.genesis_height,
            rows: self.rows,
            state: self.head.state,
            chain: self.head.chain,
            mismatch,
        }
    }

    fn run(&mut self) -> Checked {
        let genesis = read_head(self.conn, "genesis").map_err(|e| Mismatch::Genesis {
            height: 0,
            reason: e.to_string(),
        })?;
        self.genesis_height = genesis.height;
        self.check_genesis(&genesis)?;

        let conn = self.conn;
        let mut stmt = conn.prepare(
            "SELECT height, hash, signer, sequence, action, envelope, error, at, state, chain
             FROM envelopes ORDER BY height",
        )?;
        let mut rows = stmt.query([])?;
        let mut last = 0u64;
        while let Some(r) = rows.next()? {
            let stored = (|| {
                Ok::<_, rusqlite::Error>(Stored {
                    height: r.get(0)?,
                    hash: r.get(1)?,
                    signer: r.get(2)?,
                    sequence: r.get(3)?,
                    action: r.get(4)?,
                    envelope: r.get(5)?,
                    error: r.get(6)?,
                    at: r.get(7)?,
                    state: r.get(8)?,
                    chain: r.get(9)?,
                })
            })()
            .map_err(|e| Mismatch::Envelope {
                height: last + 1,
                hash: String::new(),
                signer: String::new(),
                sequence: -1,
                action: String::new(),
                reason: format!("its row cannot be read: {e}"),
            })?;
            if stored.height as u64 != last + 1 {
                return Err(Found::Mismatch(stored.mismatch(format!(
                    "it follows envelope {last}: an envelope of the log is missing"
                ))));
            }
            last = stored.height as u64;
            self.envelope(&stored, &genesis)?;
        }
        if last < genesis.height {
            return Err(Found::Mismatch(Mismatch::Genesis {
                height: genesis.height,
                reason: format!("the chain starts after the last envelope ({last})"),
            }));
        }

        let head = read_head(self.conn, "head").map_err(|e| Mismatch::Head {
            height: last,
            reason: e.to_string(),
        })?;
        if head != self.head {
            return Err(Found::Mismatch(Mismatch::Head {
                height: head.height,
                reason: format!(
                    "it is not the replay's (height {}, state {}, link {})",
                    self.head.height, self.head.state, self.head.chain
                ),
            }));
        }
        self.compare_rows()
    }

    /// A fresh ledger's chain starts from its parameters alone; a migrated one's at
    /// its last envelope then, checked once the replay gets there.
    fn check_genesis(&self, genesis: &Head) -> Checked {
        if Head::genesis(&self.id, genesis.height, genesis.state) != *genesis {
            return Err(Found::Mismatch(Mismatch::Genesis {
                height: genesis.height,
                reason: "its link is not the hash of its height and state".into(),
            }));
        }
        if genesis.height == 0 && genesis.state != self.store.digest {
            return Err(Found::Mismatch(Mismatch::Genesis {
                height: 0,
                reason: format!(
                    "its state {} is not the one the ledger's parameters make ({})",
                    genesis.state, self.store.digest
                ),
            }));
        }
        Ok(())
    }

    fn envelope(&mut self, stored: &Stored, genesis: &Head) -> Checked {
        let env: SignedEnvelope = serde_json::from_str(&stored.envelope)
            .map_err(|e| stored.mismatch(format!("its stored envelope does not parse: {e}")))?;
        let hash = env.hash();
        if hash.to_hex() != stored.hash {
            return Err(Found::Mismatch(stored.mismatch(format!(
                "its stored envelope hashes to {hash}, not to its recorded hash"
            ))));
        }
        let e = &env.envelope;
        if e.signer.to_string() != stored.signer
            || e.sequence as i64 != stored.sequence
            || e.action.name() != stored.action
        {
            return Err(Found::Mismatch(stored.mismatch(format!(
                "its columns disagree with its envelope ({} by {}, sequence {})",
                e.action.name(),
                e.signer,
                e.sequence
            ))));
        }
        let at = u64::try_from(stored.at)
            .map_err(|_| stored.mismatch(format!("its time {} is negative", stored.at)))?;

        let before = self
            .store
            .account(e.signer)
            .ok()
            .flatten()
            .map(|a| a.sequence);
        let result = rules::execute(&mut self.store, &self.config, &self.id, &env, at);
        let after = self
            .store
            .account(e.signer)
            .ok()
            .flatten()
            .map(|a| a.sequence);
        self.envelopes += 1;
        if let Err(err @ flownet_core::Error::Storage(_)) = &result {
            return Err(Found::Error(Error::Ledger(format!(
                "the replay of envelope {} failed: {err}",
                stored.height
            ))));
        }
        if after == before {
            let why = result.err().map(|e| e.to_string()).unwrap_or_default();
            return Err(Found::Mismatch(
                stored.mismatch(format!("it does not authenticate on replay ({why})")),
            ));
        }
        let replayed = result.err().map(|e| e.to_string());
        if replayed != stored.error {
            return Err(Found::Mismatch(stored.mismatch(
                match (&stored.error, &replayed) {
                    (None, Some(r)) => {
                        format!("it is recorded as accepted, the replay rejects it: {r}")
                    }
                    (Some(s), None) => {
                        format!("it is recorded as rejected ({s}), the replay accepts it")
                    }
                    (Some(s), Some(r)) => format!(
                        "it is recorded as rejected ({s}), the replay rejects it otherwise: {r}"
                    ),
                    (None, None) => unreachable!("outcomes differ"),
                },
            )));
        }

        let height = stored.height as u64;
        let state = self.store.digest;
        if height < genesis.height {
            return Ok(());
        }
        if height == genesis.height {
            if state != genesis.state {
                return Err(Found::Mismatch(Mismatch::Genesis {
                    height,
                    reason: format!(
                        "the log replays to the state {state} there, the chain starts from {}",
                        genesis.state
                    ),
                }));
            }
            self.head = *genesis;
            return Ok(());
        }
        if stored.state.as_deref() != Some(&*state.to_hex()) {
            return Err(Found::Mismatch(stored.mismatch(format!(
                "its stored state digest {} is not the replay's {state}",
                stored.state.as_deref().unwrap_or("(none)")
            ))));
        }
        let next = self
            .head
            .next(height, &hash, at, stored.error.as_deref(), state);
        if stored.chain.as_deref() != Some(&*next.chain.to_hex()) {
            return Err(Found::Mismatch(stored.mismatch(format!(
                "its stored chain link {} is not the replay's {}",
                stored.chain.as_deref().unwrap_or("(none)"),
                next.chain
            ))));
        }
        self.head = next;
        Ok(())
    }

    /// Every stored row against the replayed state, in table then key order.
    fn compare_rows(&mut self) -> Checked {
        type Rows = BTreeMap<(usize, Vec<Cell>), Row>;
        fn insert(rows: &mut Rows, row: Row) {
            rows.insert((digest::table_rank(row.table), row.key().to_vec()), row);
        }
        let mut stored = Rows::new();
        digest::for_each_stored_row(self.conn, |row| {
            insert(&mut stored, row);
            Ok(())
        })?;
        let mut replayed = Rows::new();
        let s = &self.store.store.state;
        let typed = meta_rows(&self.id, &self.config, &self.store.store)
            .into_iter()
            .map(Ok)
            .chain(s.accounts.values().map(Row::account))
            .chain(s.nodes.values().map(Row::node))
            .chain(s.tasks.values().map(Row::task))
            .chain(s.ratings.values().map(Row::rating))
            .chain(s.nfts.values().map(Row::nft));
        for row in typed {
            insert(
                &mut replayed,
                row.map_err(|e| Error::Ledger(e.to_string()))?,
            );
        }
        let keys: BTreeSet<_> = stored.keys().chain(replayed.keys()).collect();
        for key in keys {
            let (a, b) = (stored.get(key), replayed.get(key));
            if a.map(|r| &r.cells) != b.map(|r| &r.cells) {
                let row = a.or(b).expect("the key is in one of the maps");
                let show = |r: Option<&Row>| r.map(|r| r.cells.iter().map(Cell::display).collect());
                return Err(Found::Mismatch(Mismatch::Row {
                    table: row.table.into(),
                    key: row.key_string(),
                    stored: show(a),
                    replayed: show(b),
                }));
            }
            self.rows += 1;
        }
        Ok(())
    }
}

/// Why a check stopped: the first mismatch, or a file it cannot read.
enum Found {
    Mismatch(Mismatch),
    Error(Error),
}

type Checked = std::result::Result<(), Found>;

impl From<Mismatch> for Found {
    fn from(m: Mismatch) -> Self {
        Self::Mismatch(m)
    }
}

impl From<Error> for Found {
    fn from(e: Error) -> Self {
        Self::Error(e)
    }
}

impl From<rusqlite::Error> for Found {
    fn from(e: rusqlite::Error) -> Self {
        Self::Error(e.into())
    }
}

/// The meta rows that are state, as the replay holds them.
fn meta_rows(id: &LedgerId, config: &LedgerConfig, store: &MemoryStore) -> Vec<Row> {
    vec![
        Row::meta("ledger_id", id.to_hex()),
        Row::meta("config", serde_json::to_string(config).unwrap_or_default()),
        Row::globals(&store.state.globals).unwrap_or_else(|_| Row::meta("globals", "")),
    ]
}
