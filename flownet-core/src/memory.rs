//! In-memory implementations of the ports, for tests of the layers above and for the
//! rulebook's own property tests.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use async_trait::async_trait;

use crate::{
    Account, Address, BlobStore, Digest32, Engine, Error, Globals, InferenceOutput,
    InferenceRequest, Ledger, LedgerConfig, LedgerId, LedgerInfo, ModelInfo, NftId, Node,
    OutputNft, OutputRef, Rating, Receipt, Result, SignedEnvelope, StateStore, Task, TaskId,
    TaskQuery, Timestamp, crypto, rank_nodes, rules,
};

/// The whole marketplace state in maps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryState {
    pub accounts: BTreeMap<Address, Account>,
    pub nodes: BTreeMap<Address, Node>,
    pub tasks: BTreeMap<TaskId, Task>,
    pub ratings: BTreeMap<(TaskId, Address), Rating>,
    pub nfts: BTreeMap<NftId, OutputNft>,
    pub globals: Globals,
}

impl MemoryState {
    /// `Σ balances + escrowed + bounty pools + treasury`, which must equal the total
    /// minted after every action; also checks the globals against the tasks.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        let balances: u128 = self
            .accounts
            .values()
            .map(|a| u128::from(a.balance.0))
            .sum();
        let g = &self.globals;
        let held = balances
            + u128::from(g.escrowed.0)
            + u128::from(g.bounty_pools.0)
            + u128::from(g.treasury.0);
        if held != u128::from(g.total_minted.0) {
            return Err(format!(
                "supply broken: held {held} != minted {}",
                g.total_minted.0
            ));
        }
        let escrow: u64 = self
            .tasks
            .values()
            .filter(|t| !t.status.is_final())
            .map(|t| t.price.0)
            .sum();
        if escrow != g.escrowed.0 {
            return Err(format!(
                "escrow {} != open tasks' prices {escrow}",
                g.escrowed.0
            ));
        }
        let pools: u64 = self.tasks.values().map(|t| t.bounty_pool.0).sum();
        if pools != g.bounty_pools.0 {
            return Err(format!(
                "bounty pools {} != tasks' pools {pools}",
                g.bounty_pools.0
            ));
        }
        Ok(())
    }
}

/// A [`StateStore`] over [`MemoryState`] with a one-level savepoint, kept as an undo
/// log of the values each write replaced (so a savepoint costs nothing however large
/// the state grows).
#[derive(Debug, Default)]
pub struct MemoryStore {
    pub state: MemoryState,
    undo: Option<Vec<Undo>>,
}

#[derive(Debug)]
enum Undo {
    Account(Address, Option<Account>),
    Node(Address, Option<Node>),
    Task(TaskId, Option<Task>),
    Rating((TaskId, Address), Option<Rating>),
    Nft(NftId, Option<OutputNft>),
    Globals(Globals),
}

fn restore<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, old: Option<V>) {
    match old {
        Some(v) => map.insert(key, v),
        None => map.remove(&key),
    };
}

impl MemoryStore {
    fn record(&mut self, undo: impl FnOnce(&MemoryState) -> Undo) {
        if let Some(log) = &mut self.undo {
            log.push(undo(&self.state));
        }
    }
}

impl StateStore for MemoryStore {
    fn account(&self, a: Address) -> Result<Option<Account>> {
        Ok(self.state.accounts.get(&a).cloned())
    }
    fn put_account(&mut self, a: &Account) -> Result<()> {
        self.record(|s| Undo::Account(a.address, s.accounts.get(&a.address).cloned()));
        self.state.accounts.insert(a.address, a.clone());
        Ok(())
    }
    fn node(&self, owner: Address) -> Result<Option<Node>> {
        Ok(self.state.nodes.get(&owner).cloned())
    }
    fn put_node(&mut self, n: &Node) -> Result<()> {
        self.record(|s| Undo::Node(n.owner, s.nodes.get(&n.owner).cloned()));
        self.state.nodes.insert(n.owner, n.clone());
        Ok(())
    }
    fn task(&self, id: TaskId) -> Result<Option<Task>> {
        Ok(self.state.tasks.get(&id).cloned())
    }
    fn put_task(&mut self, t: &Task) -> Result<()> {
        self.record(|s| Undo::Task(t.id, s.tasks.get(&t.id).cloned()));
        self.state.tasks.insert(t.id, t.clone());
        Ok(())
    }
    fn rating(&self, task: TaskId, rater: Address) -> Result<Option<Rating>> {
        Ok(self.state.ratings.get(&(task, rater)).cloned())
    }
    fn put_rating(&mut self, r: &Rating) -> Result<()> {
        let key = (r.task, r.rater);
        self.record(|s| Undo::Rating(key, s.ratings.get(&key).cloned()));
        self.state.ratings.insert(key, r.clone());
        Ok(())
    }
    fn put_nft(&mut self, n: &OutputNft) -> Result<()> {
        self.record(|s| Undo::Nft(n.id, s.nfts.get(&n.id).cloned()));
        self.state.nfts.insert(n.id, n.clone());
        Ok(())
    }
    fn globals(&self) -> Result<Globals> {
        Ok(self.state.globals.clone())
    }
    fn put_globals(&mut self, g: &Globals) -> Result<()> {
        self.record(|s| Undo::Globals(s.globals.clone()));
        self.state.globals = g.clone();
        Ok(())
    }
    fn savepoint(&mut self) -> Result<()> {
        self.undo = Some(Vec::new());
        Ok(())
    }
    fn rollback_to_savepoint(&mut self) -> Result<()> {
        // Newest first, so each entry ends up holding its value from before the savepoint.
        for undo in self.undo.take().unwrap_or_default().into_iter().rev() {
            let s = &mut self.state;
            match undo {
                Undo::Account(k, v) => restore(&mut s.accounts, k, v),
                Undo::Node(k, v) => restore(&mut s.nodes, k, v),
                Undo::Task(k, v) => restore(&mut s.tasks, k, v),
                Undo::Rating(k, v) => restore(&mut s.ratings, k, v),
                Undo::Nft(k, v) => restore(&mut s.nfts, k, v),
                Undo::Globals(g) => s.globals = g,
            }
        }
        Ok(())
    }
    fn release_savepoint(&mut self) -> Result<()> {
        self.undo = None;
        Ok(())
    }
}

/// A [`Ledger`] in memory with a settable clock.
#[derive(Debug)]
pub struct MemoryLedger {
    inner: Mutex<(MemoryStore, u64)>,
    config: LedgerConfig,
    id: LedgerId,
    now: Mutex<Timestamp>,
}

impl MemoryLedger {
    pub fn new(config: LedgerConfig, now: Timestamp) -> Self {
        let id = Digest32(crypto::tagged_hash(
            crypto::LEDGER_TAG,
            &[b"memory", &now.to_be_bytes()],
        ));
        Self {
            inner: Mutex::default(),
            config,
            id,
            now: Mutex::new(now),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, seconds: u64) {
        *self.now.lock().unwrap() += seconds;
    }

    /// A copy of the whole state.
    pub fn state(&self) -> MemoryState {
        self.inner.lock().unwrap().0.state.clone()
    }
}

#[async_trait]
impl Ledger for MemoryLedger {
    async fn info(&self) -> Result<LedgerInfo> {
        let inner = self.inner.lock().unwrap();
        Ok(LedgerInfo {
            id: self.id,
            network: "memory".into(),
            config: self.config.clone(),
            now: *self.now.lock().unwrap(),
            height: inner.1,
            globals: inner.0.state.globals.clone(),
        })
    }

    async fn send(&self, env: SignedEnvelope) -> Result<Receipt> {
        let now = *self.now.lock().unwrap();
        let mut inner = self.inner.lock().unwrap();
        let outcome = rules::execute(&mut inner.0, &self.config, &self.id, &env, now)?;
        inner.1 += 1;
        Ok(Receipt {
            hash: env.hash(),
            signer: env.envelope.signer,
            sequence: env.envelope.sequence,
            action: env.envelope.action.name().into(),
            outcome,
            at: now,
            height: inner.1,
        })
    }

    async fn account(&self, a: Address) -> Result<Option<Account>> {
        Ok(self.inner.lock().unwrap().0.state.accounts.get(&a).cloned())
    }

    async fn node(&self, owner: Address) -> Result<Option<Node>> {
        Ok(self
            .inner
            .lock()
            .unwrap()
            .0
            .state
            .nodes
            .get(&owner)
            .cloned())
    }

    async fn nodes(&self) -> Result<Vec<Node>> {
        let mut nodes: Vec<Node> = self
            .inner
            .lock()
            .unwrap()
            .0
            .state
            .nodes
            .values()
            .cloned()
            .collect();
        rank_nodes(&mut nodes);
        Ok(nodes)
    }

    async fn task(&self, id: TaskId) -> Result<Option<Task>> {
        Ok(self.inner.lock().unwrap().0.state.tasks.get(&id).cloned())
    }

    async fn tasks(&self, q: TaskQuery) -> Result<Vec<Task>> {
        let inner = self.inner.lock().unwrap();
        Ok(inner
            .0
            .state
            .tasks
            .values()
            .filter(|t| q.node.is_none_or(|n| t.node == n))
            .filter(|t| q.requester.is_none_or(|r| t.requester == r))
            .filter(|t| q.status.is_none_or(|s| t.status == s))
            .filter(|t| q.after.is_none_or(|a| t.id > a))
            .take(q.limit.map_or(usize::MAX, |l| l as usize))
            .cloned()
            .collect())
    }

    async fn ratings(&self, task: TaskId) -> Result<Vec<Rating>> {
        let inner = self.inner.lock().unwrap();
        Ok(inner
            .0
            .state
            .ratings
            .values()
            .filter(|r| r.task == task)
            .cloned()
            .collect())
    }

    async fn nfts(&self, owner: Address) -> Result<Vec<OutputNft>> {
        let inner = self.inner.lock().unwrap();
        Ok(inner
            .0
            .state
            .nfts
            .values()
            .filter(|n| n.owner == owner)
            .cloned()
            .collect())
    }
}

/// A [`BlobStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryBlobs {
    blobs: Mutex<HashMap<Digest32, Vec<u8>>>,
    deliveries: Mutex<HashMap<TaskId, OutputRef>>,
}

impl BlobStore for MemoryBlobs {
    fn put(&self, bytes: &[u8]) -> Result<Digest32> {
        let sha = crypto::sha256(bytes);
        self.blobs.lock().unwrap().insert(sha, bytes.to_vec());
        Ok(sha)
    }
    fn get(&self, sha: &Digest32) -> Result<Option<Vec<u8>>> {
        Ok(self.blobs.lock().unwrap().get(sha).cloned())
    }
    fn record_delivery(&self, task: TaskId, output: &OutputRef) -> Result<()> {
        self.deliveries.lock().unwrap().insert(task, output.clone());
        Ok(())
    }
    fn delivery(&self, task: TaskId) -> Result<Option<OutputRef>> {
        Ok(self.deliveries.lock().unwrap().get(&task).cloned())
    }
}

/// An [`Engine`] whose one model echoes the prompt, or fails when the prompt is
/// `"fail"` (a failure that may pass) or `"bad input"` (one that cannot); counts its
/// calls.
#[derive(Debug)]
pub struct EchoEngine {
    pub model: ModelInfo,
    pub calls: Arc<Mutex<u64>>,
}

impl EchoEngine {
    pub fn new(id: &str) -> Self {
        Self {
            model: ModelInfo {
                id: id.into(),
                kind: crate::TaskKind::TextGeneration,
                name: "echo".into(),
                weights_sha256: crypto::sha256(id.as_bytes()),
                output_mime: "text/plain".into(),
                prompt_mapping: "the output is the prompt".into(),
                defaults: serde_json::json!({}),
            },
            calls: Arc::default(),
        }
    }
}

#[async_trait]
impl Engine for EchoEngine {
    fn models(&self) -> Vec<ModelInfo> {
        vec![self.model.clone()]
    }

    async fn infer(&self, req: InferenceRequest) -> Result<InferenceOutput> {
        *self.calls.lock().unwrap() += 1;
        if req.prompt == "fail" {
            return Err(Error::Inference("the echo model was asked to fail".into()));
        }
        if req.prompt == "bad input" {
            return Err(Error::InvalidInput(
                "the echo model cannot read this input".into(),
            ));
        }
        Ok(InferenceOutput {
            bytes: req.prompt.into_bytes(),
            mime: "text/plain".into(),
            metadata: serde_json::json!({}),
        })
    }
}
