//! A signing wallet over any [`Ledger`]: builds, signs and sends envelopes.

use std::sync::Arc;

use futures::lock::Mutex;

use crate::{
    Action, Address, Amount, Envelope, Error, Ledger, LedgerId, OfferedModel, OutputRef, Receipt,
    Result, SigningKey, TaskId,
};

/// A key and the ledger it signs for. Sends from one wallet are serialised so that
/// their sequence numbers never collide.
pub struct Wallet<L: ?Sized> {
    ledger: Arc<L>,
    key: SigningKey,
    address: Address,
    ledger_id: std::sync::OnceLock<LedgerId>,
    // Core has no runtime: `futures`' lock works under any executor.
    send_lock: Mutex<()>,
}

impl<L: ?Sized> std::fmt::Debug for Wallet<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl<L: Ledger + ?Sized> Wallet<L> {
    /// A wallet for `key` at the address the embedded ledger derives from it.
    pub fn new(ledger: Arc<L>, key: SigningKey) -> Self {
        let address = Address::derive(&key.public_key());
        Self::with_address(ledger, key, address)
    }

    /// A wallet for `key` at a given address (Flow assigns addresses itself).
    pub fn with_address(ledger: Arc<L>, key: SigningKey, address: Address) -> Self {
        Self {
            ledger,
            key,
            address,
            ledger_id: std::sync::OnceLock::new(),
            send_lock: Mutex::new(()),
        }
    }

    pub fn address(&self) -> Address {
        self.address
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    pub fn ledger(&self) -> &Arc<L> {
        &self.ledger
    }

    async fn ledger_id(&self) -> Result<LedgerId> {
        if let Some(id) = self.ledger_id.get() {
            return Ok(*id);
        }
        let id = self.ledger.info().await?.id;
        Ok(*self.ledger_id.get_or_init(|| id))
    }

    /// Signs `action` with the account's current sequence number and sends it. When
    /// another process using the same key took that number first, it retries once with
    /// the next one.
    pub async fn send(&self, action: Action) -> Result<Receipt> {
        let _guard = self.send_lock.lock().await;
        let ledger = self.ledger_id().await?;
        let mut retried = false;
        loop {
            let sequence = match &action {
                Action::CreateAccount { .. } => 0,
                _ => {
                    self.ledger
                        .account(self.address)
                        .await?
                        .ok_or_else(|| {
                            Error::NotFound(format!("account {} (create it first)", self.address))
                        })?
                        .sequence
                }
            };
            let signed = Envelope {
                ledger,
                signer: self.address,
                sequence,
                action: action.clone(),
            }
            .sign(&self.key);
            match self.ledger.send(signed).await {
                Err(Error::BadSequence { .. }) if !retried => retried = true,
                other => return other,
            }
        }
    }

    /// Registers this wallet's key as an account.
    pub async fn create_account(&self) -> Result<Receipt> {
        // A wallet signs with SHA3-256 (see `send`), so that is what the account records.
        self.send(Action::CreateAccount {
            public_key: self.key.public_key(),
            hash_algo: crate::HashAlgo::Sha3_256,
        })
        .await
    }

    /// Creates the account if it does not exist yet, then takes the faucet's welcome
    /// amount if it has not yet. Returns what the faucet granted.
    pub async fn ensure_funded(&self) -> Result<Amount> {
        let account = match self.ledger.account(self.address).await? {
            Some(a) => a,
            None => {
                self.create_account().await?;
                self.ledger
                    .account(self.address)
                    .await?
                    .ok_or_else(|| Error::Storage("account vanished".into()))?
            }
        };
        if account.faucet_used {
            return Ok(Amount::ZERO);
        }
        match self.send(Action::Faucet).await {
            Ok(r) => Ok(r.outcome.credited.unwrap_or_default()),
            Err(Error::Faucet(_)) => Ok(Amount::ZERO),
            Err(e) => Err(e),
        }
    }

    pub async fn faucet(&self) -> Result<Receipt> {
        self.send(Action::Faucet).await
    }

    pub async fn transfer(&self, to: Address, amount: Amount) -> Result<Receipt> {
        self.send(Action::Transfer { to, amount }).await
    }

    pub async fn register_node(
        &self,
        name: &str,
        endpoint: &str,
        models: Vec<OfferedModel>,
    ) -> Result<Receipt> {
        self.send(Action::RegisterNode {
            name: name.into(),
            endpoint: endpoint.into(),
            models,
        })
        .await
    }

    pub async fn set_node_active(&self, active: bool) -> Result<Receipt> {
        self.send(Action::SetNodeActive { active }).await
    }

    /// Submits a task to a per-task offer, with no input blob, and returns its id.
    pub async fn submit(
        &self,
        node: Address,
        model_id: &str,
        prompt: &str,
        params: &str,
        max_price: Amount,
    ) -> Result<TaskId> {
        self.submit_action(Action::Submit {
            node,
            model_id: model_id.into(),
            prompt: prompt.into(),
            params: params.into(),
            max_price,
            input: None,
            max_units: 0,
        })
        .await
    }

    /// Submits any task (an input blob, a metered offer's `max_units`) and returns its
    /// id. `action` must be an [`Action::Submit`].
    pub async fn submit_action(&self, action: Action) -> Result<TaskId> {
        if !matches!(action, Action::Submit { .. }) {
            return Err(Error::InvalidInput(format!(
                "submit_action takes a submit, not {}",
                action.name()
            )));
        }
        let receipt = self.send(action).await?;
        receipt
            .outcome
            .task
            .ok_or_else(|| Error::Storage("submit receipt has no task id".into()))
    }

    pub async fn cancel(&self, task: TaskId) -> Result<Receipt> {
        self.send(Action::Cancel { task }).await
    }

    pub async fn claim(&self, task: TaskId) -> Result<Receipt> {
        self.send(Action::Claim { task }).await
    }

    pub async fn fulfil(&self, task: TaskId, result: OutputRef) -> Result<Receipt> {
        self.fulfil_units(task, result, None).await
    }

    /// Fulfils a task, stating the units the output holds when the task is metered.
    pub async fn fulfil_units(
        &self,
        task: TaskId,
        result: OutputRef,
        units: Option<u64>,
    ) -> Result<Receipt> {
        self.send(Action::Fulfil {
            task,
            result,
            units,
        })
        .await
    }

    /// Declines a task addressed to this account's node (open, or claimed by it, before
    /// its deadline): the requester is refunded at once. The reason is cut to the
    /// ledger's limit and its control characters replaced, so any error text fits.
    pub async fn decline(&self, task: TaskId, reason: &str) -> Result<Receipt> {
        let reason = crate::rules::decline_reason(reason);
        self.send(Action::Decline { task, reason }).await
    }

    pub async fn expire(&self, task: TaskId) -> Result<Receipt> {
        self.send(Action::Expire { task }).await
    }

    pub async fn rate(&self, task: TaskId, stars: u8) -> Result<Receipt> {
        self.send(Action::Rate { task, stars }).await
    }

    pub async fn sweep(&self, task: TaskId) -> Result<Receipt> {
        self.send(Action::Sweep { task }).await
    }
}
