//! The embedded ledger's promise of integrity: a digest of its whole state that every
//! write keeps up to date, and a hash chain through the envelopes it applied.
//!
//! The state digest is the sum, modulo 2²⁵⁶, of one hash per stored row of the state
//! tables (and of the meta rows that are state: `ledger_id`, `config`, `globals`). A
//! sum rather than a XOR, so two equal rows do not cancel; and a sum, so a write
//! updates it in a few hashes (take the replaced row's hash off, add the new one's)
//! instead of rehashing the state. [`Digesting`] does that around any [`StateStore`],
//! so no write of the rulebook escapes it. Each envelope's record then stores the
//! digest after it and a link of the chain: the hash of the previous link, the
//! envelope, its outcome and that digest.
//!
//! This detects edits of the file made outside the ledger's own code; it is no
//! signature by a third party, so someone who rewrites the whole file consistently
//! (recomputing every digest and link) is not detected.

use flownet_core::{
    Account, Address, Digest32, Globals, LedgerId, Node, OutputNft, Rating, StateStore, Task,
    TaskId, crypto,
};
use rusqlite::{Connection, types::ValueRef};
use serde::{Deserialize, Serialize};

/// Domain tag of one row's hash in the state digest.
const ROW_TAG: &str = "FLOWNET-V1-STATE-ROW";
/// Domain tag of the chain's links.
const CHAIN_TAG: &str = "FLOWNET-V1-LEDGER-CHAIN";

/// The state tables (with the meta rows that are state; the others are the schema
/// version and the chain's own head and genesis), each with its columns in the order a row is hashed and how many
/// of them (from the first) make its key.
const TABLES: [(&str, &str, usize); 6] = [
    (
        "meta",
        "SELECT key, value FROM meta WHERE key IN ('config', 'globals', 'ledger_id')",
        1,
    ),
    ("accounts", "SELECT address, data FROM accounts", 1),
    ("nodes", "SELECT owner, data FROM nodes", 1),
    (
        "tasks",
        "SELECT id, node, requester, status, data FROM tasks",
        1,
    ),
    ("ratings", "SELECT task, rater, data FROM ratings", 2),
    ("nfts", "SELECT id, owner, data FROM nfts", 1),
];

/// The order of the tables when rows are compared (the order of [`TABLES`]).
pub(crate) fn table_rank(table: &str) -> usize {
    TABLES
        .iter()
        .position(|t| t.0 == table)
        .unwrap_or(usize::MAX)
}

/// Where the chain is: the height of its last envelope, its last link and the state
/// digest after it. Kept in meta as `head`; `genesis` is where the chain started (the
/// ledger's creation, or the migration of a file from before the chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Head {
    pub height: u64,
    pub chain: Digest32,
    pub state: Digest32,
}

impl Head {
    /// The chain's start at `height` with the state digest `state`.
    pub fn genesis(ledger: &LedgerId, height: u64, state: Digest32) -> Self {
        Self {
            height,
            chain: Digest32(crypto::tagged_hash(
                CHAIN_TAG,
                &[b"genesis", &ledger.0, &height.to_be_bytes(), &state.0],
            )),
            state,
        }
    }

    /// The head after the envelope `envelope` at `height`, applied at `at` with the
    /// rule's rejection `error` (if any), leaving the state digest `state`.
    pub fn next(
        &self,
        height: u64,
        envelope: &Digest32,
        at: u64,
        error: Option<&str>,
        state: Digest32,
    ) -> Self {
        // The outcome goes last, so its variable length needs no prefix.
        let outcome: &[u8] = match error {
            None => b"\0",
            Some(_) => b"\x01",
        };
        let chain = Digest32(crypto::tagged_hash(
            CHAIN_TAG,
            &[
                b"envelope",
                &self.chain.0,
                &height.to_be_bytes(),
                &envelope.0,
                &at.to_be_bytes(),
                &state.0,
                outcome,
                error.unwrap_or_default().as_bytes(),
            ],
        ));
        Self {
            height,
            chain,
            state,
        }
    }
}

/// One column's value, as SQLite holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Real(String),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Cell {
    fn text(s: impl Into<String>) -> Self {
        Self::Text(s.into().into_bytes())
    }

    fn from_sql(v: ValueRef<'_>) -> Self {
        match v {
            ValueRef::Null => Self::Null,
            ValueRef::Integer(i) => Self::Int(i),
            ValueRef::Real(f) => Self::Real(f.to_string()),
            ValueRef::Text(t) => Self::Text(t.to_vec()),
            ValueRef::Blob(b) => Self::Blob(b.to_vec()),
        }
    }

    /// Tagged and length-prefixed, so no two rows encode alike.
    fn encode(&self, buf: &mut Vec<u8>) {
        let int;
        let (tag, bytes): (u8, &[u8]) = match self {
            Self::Null => (b'n', b""),
            Self::Int(i) => {
                int = i.to_string();
                (b'i', int.as_bytes())
            }
            Self::Real(r) => (b'r', r.as_bytes()),
            Self::Text(t) => (b't', t),
            Self::Blob(b) => (b'b', b),
        };
        buf.push(tag);
        buf.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        buf.extend_from_slice(bytes);
    }

    /// The value for people (text as text, lossily).
    pub fn display(&self) -> String {
        match self {
            Self::Null => "NULL".into(),
            Self::Int(i) => i.to_string(),
            Self::Real(r) => r.clone(),
            Self::Text(t) => String::from_utf8_lossy(t).into_owned(),
            Self::Blob(b) => format!(
                "x'{}'",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            ),
        }
    }
}

/// One stored row of the state: its table and its columns in schema order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub table: &'static str,
    pub cells: Vec<Cell>,
}

impl Row {
    /// The row's term in the state digest.
    pub fn hash(&self) -> [u8; 32] {
        let mut buf = Vec::with_capacity(64 + self.cells.len() * 16);
        buf.extend_from_slice(self.table.as_bytes());
        buf.push(0);
        for c in &self.cells {
            c.encode(&mut buf);
        }
        crypto::tagged_hash(ROW_TAG, &[&buf])
    }

    /// The columns that make the row's key.
    pub fn key(&self) -> &[Cell] {
        let n = TABLES.iter().find(|t| t.0 == self.table).map_or(1, |t| t.2);
        &self.cells[..n.min(self.cells.len())]
    }

    /// The key for people: `0x…`, `7`, `7/0x…`.
    pub fn key_string(&self) -> String {
        self.key()
            .iter()
            .map(Cell::display)
            .collect::<Vec<_>>()
            .join("/")
    }

    fn json<T: Serialize>(v: &T) -> flownet_core::Result<Cell> {
        serde_json::to_vec(v)
            .map(Cell::Text)
            .map_err(|e| flownet_core::Error::Storage(format!("cannot encode a record: {e}")))
    }

    // The rows exactly as the embedded ledger's `SqlStore` writes them.

    pub fn account(a: &Account) -> flownet_core::Result<Self> {
        Ok(Self {
            table: "accounts",
            cells: vec![Cell::text(a.address.to_string()), Self::json(a)?],
        })
    }

    pub fn node(n: &Node) -> flownet_core::Result<Self> {
        Ok(Self {
            table: "nodes",
            cells: vec![Cell::text(n.owner.to_string()), Self::json(n)?],
        })
    }

    pub fn task(t: &Task) -> flownet_core::Result<Self> {
        Ok(Self {
            table: "tasks",
            cells: vec![
                Cell::Int(t.id as i64),
                Cell::text(t.node.to_string()),
                Cell::text(t.requester.to_string()),
                Cell::text(t.status.as_str()),
                Self::json(t)?,
            ],
        })
    }

    pub fn rating(r: &Rating) -> flownet_core::Result<Self> {
        Ok(Self {
            table: "ratings",
            cells: vec![
                Cell::Int(r.task as i64),
                Cell::text(r.rater.to_string()),
                Self::json(r)?,
            ],
        })
    }

    pub fn nft(n: &OutputNft) -> flownet_core::Result<Self> {
        Ok(Self {
            table: "nfts",
            cells: vec![
                Cell::Int(n.id as i64),
                Cell::text(n.owner.to_string()),
                Self::json(n)?,
            ],
        })
    }

    pub fn meta(key: &str, value: impl Into<String>) -> Self {
        Self {
            table: "meta",
            cells: vec![Cell::text(key), Cell::text(value)],
        }
    }

    pub fn globals(g: &Globals) -> flownet_core::Result<Self> {
        Ok(Self {
            table: "meta",
            cells: vec![Cell::text("globals"), Self::json(g)?],
        })
    }
}

/// `digest += row` modulo 2²⁵⁶ (big-endian).
pub(crate) fn add(digest: &mut Digest32, row: &[u8; 32]) {
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let s = u16::from(digest.0[i]) + u16::from(row[i]) + carry;
        digest.0[i] = s as u8;
        carry = s >> 8;
    }
}

/// `digest -= row` modulo 2²⁵⁶ (big-endian).
pub(crate) fn sub(digest: &mut Digest32, row: &[u8; 32]) {
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(digest.0[i]) - i16::from(row[i]) - borrow;
        borrow = i16::from(d < 0);
        digest.0[i] = (d + 256 * borrow) as u8;
    }
}

/// Calls `f` with every stored row of the state, table by table.
pub(crate) fn for_each_stored_row(
    conn: &Connection,
    mut f: impl FnMut(Row) -> crate::Result<()>,
) -> crate::Result<()> {
    for (table, sql, _) in TABLES {
        let mut stmt = conn.prepare(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let cells = (0..columns)
                .map(|i| r.get_ref(i).map(Cell::from_sql))
                .collect::<rusqlite::Result<_>>()?;
            f(Row { table, cells })?;
        }
    }
    Ok(())
}

/// The state digest of the rows stored in `conn` (and how many rows there are).
pub(crate) fn stored_digest(conn: &Connection) -> crate::Result<(Digest32, u64)> {
    let (mut digest, mut rows) = (Digest32::default(), 0);
    for_each_stored_row(conn, |row| {
        add(&mut digest, &row.hash());
        rows += 1;
        Ok(())
    })?;
    Ok((digest, rows))
}

/// A [`StateStore`] that keeps the state digest of the store it wraps up to date:
/// each write takes the replaced row's hash off and adds the new row's.
#[derive(Debug)]
pub(crate) struct Digesting<S> {
    pub store: S,
    pub digest: Digest32,
    /// The digest at the open savepoint, restored by a rollback.
    saved: Option<Digest32>,
}

impl<S: StateStore> Digesting<S> {
    pub fn new(store: S, digest: Digest32) -> Self {
        Self {
            store,
            digest,
            saved: None,
        }
    }

    fn replace(&mut self, old: Option<Row>, new: &Row) {
        if let Some(old) = old {
            sub(&mut self.digest, &old.hash());
        }
        add(&mut self.digest, &new.hash());
    }
}

impl<S: StateStore> StateStore for Digesting<S> {
    fn account(&self, address: Address) -> flownet_core::Result<Option<Account>> {
        self.store.account(address)
    }
    fn put_account(&mut self, account: &Account) -> flownet_core::Result<()> {
        let old = self.store.account(account.address)?;
        let old = old.as_ref().map(Row::account).transpose()?;
        self.store.put_account(account)?;
        self.replace(old, &Row::account(account)?);
        Ok(())
    }
    fn node(&self, owner: Address) -> flownet_core::Result<Option<Node>> {
        self.store.node(owner)
    }
    fn put_node(&mut self, node: &Node) -> flownet_core::Result<()> {
        let old = self.store.node(node.owner)?;
        let old = old.as_ref().map(Row::node).transpose()?;
        self.store.put_node(node)?;
        self.replace(old, &Row::node(node)?);
        Ok(())
    }
    fn task(&self, id: TaskId) -> flownet_core::Result<Option<Task>> {
        self.store.task(id)
    }
    fn put_task(&mut self, task: &Task) -> flownet_core::Result<()> {
        let old = self.store.task(task.id)?;
        let old = old.as_ref().map(Row::task).transpose()?;
        self.store.put_task(task)?;
        self.replace(old, &Row::task(task)?);
        Ok(())
    }
    fn rating(&self, task: TaskId, rater: Address) -> flownet_core::Result<Option<Rating>> {
        self.store.rating(task, rater)
    }
    fn put_rating(&mut self, rating: &Rating) -> flownet_core::Result<()> {
        let old = self.store.rating(rating.task, rating.rater)?;
        let old = old.as_ref().map(Row::rating).transpose()?;
        self.store.put_rating(rating)?;
        self.replace(old, &Row::rating(rating)?);
        Ok(())
    }
    fn put_nft(&mut self, nft: &OutputNft) -> flownet_core::Result<()> {
        // The port has no read of an NFT: the rulebook mints each id once (the SQL
        // store refuses a second row with the same id).
        self.store.put_nft(nft)?;
        self.replace(None, &Row::nft(nft)?);
        Ok(())
    }
    fn globals(&self) -> flownet_core::Result<Globals> {
        self.store.globals()
    }
    fn put_globals(&mut self, globals: &Globals) -> flownet_core::Result<()> {
        let old = Row::globals(&self.store.globals()?)?;
        self.store.put_globals(globals)?;
        self.replace(Some(old), &Row::globals(globals)?);
        Ok(())
    }
    fn savepoint(&mut self) -> flownet_core::Result<()> {
        self.store.savepoint()?;
        self.saved = Some(self.digest);
        Ok(())
    }
    fn rollback_to_savepoint(&mut self) -> flownet_core::Result<()> {
        self.store.rollback_to_savepoint()?;
        if let Some(saved) = self.saved.take() {
            self.digest = saved;
        }
        Ok(())
    }
    fn release_savepoint(&mut self) -> flownet_core::Result<()> {
        self.store.release_savepoint()?;
        self.saved = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sum_takes_back_what_it_added_and_equal_rows_do_not_cancel() {
        let (a, b) = (
            Row::meta("globals", "{}").hash(),
            Row::meta("config", "{}").hash(),
        );
        let mut d = Digest32::default();
        add(&mut d, &a);
        add(&mut d, &b);
        sub(&mut d, &a);
        let mut only_b = Digest32::default();
        add(&mut only_b, &b);
        assert_eq!(d, only_b);
        // Carries and borrows cross every byte.
        let mut max = Digest32([0xff; 32]);
        add(&mut max, &{
            let mut one = [0; 32];
            one[31] = 1;
            one
        });
        assert_eq!(max, Digest32::default());
        sub(&mut max, &[0xff; 32]);
        let mut one = [0; 32];
        one[31] = 1;
        assert_eq!(max, Digest32(one));
        // Twice the same row is not no row (a XOR would say it is).
        let mut twice = Digest32::default();
        add(&mut twice, &a);
        add(&mut twice, &a);
        assert_ne!(twice, Digest32::default());
    }

    #[test]
    fn cells_are_unambiguous() {
        let one = Row {
            table: "tasks",
            cells: vec![Cell::text("ab"), Cell::text("c")],
        };
        let two = Row {
            table: "tasks",
            cells: vec![Cell::text("a"), Cell::text("bc")],
        };
        let int = Row {
            table: "tasks",
            cells: vec![Cell::Int(7)],
        };
        let text = Row {
            table: "tasks",
            cells: vec![Cell::text("7")],
        };
        assert_ne!(one.hash(), two.hash());
        assert_ne!(int.hash(), text.hash());
    }
}
