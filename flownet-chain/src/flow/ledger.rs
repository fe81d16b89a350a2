//! [`FlowLedger`]: the core's [`Ledger`] over the Flow Access API.
//!
//! A signed FlowNet envelope is checked exactly as the embedded ledger checks
//! it — the envelope's signature against the account's key on chain, its
//! sequence number against that key's sequence number — and then carried out
//! as the matching Cadence transaction of `cadence/transactions`, proposed
//! with that sequence number and signed with the same key (one P-256 key works
//! on both ledgers). The contracts apply the rulebook; their rejections come
//! back as the core's typed errors.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use async_trait::async_trait;
use flownet_core::{
    Account, Action, Address, Amount, Digest32, Error, Globals, InputRef, Ledger, LedgerConfig,
    LedgerId, LedgerInfo, Node, NodeStats, OfferedModel, Outcome, OutputNft, OutputRef, PriceUnit,
    PublicKey, Rating, Receipt, SignedEnvelope, SigningKey, Task, TaskId, TaskQuery, TaskStatus,
    Wallet, rank_nodes,
};

use super::{
    FlowError, ProposalKey, Transaction, Value,
    access::{AccessClient, FlowAccountInfo, TransactionResult},
    account::{FlowSigner, created_address, ledger_id},
    errors,
    keys::HashAlgorithm,
    keys::{FlowKey, SignatureAlgorithm},
    pow::{self, Challenge, Proof},
    sponsor::{self, Payer},
    templates::{CONTRACTS, Network, Template},
};

/// How a [`FlowLedger`] talks to its network.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    pub network: Network,
    /// Pays every transaction's fees and co-signs the faucet and new accounts,
    /// so users never hold FLOW. Without one (and without a `payer`), each
    /// signer pays for itself and there is no faucet and no account creation.
    pub sponsor: Option<FlowSigner>,
    /// Without a `sponsor` key: a remote payer (a `flownet sponsor` service)
    /// that co-signs the project's own transactions as payer only, creates
    /// accounts for keys that prove themselves with a signed `create_account`
    /// envelope, and co-signs the faucet.
    pub payer: Option<Arc<dyn Payer>>,
    pub gas_limit: u64,
    /// FLOW (10⁻⁸ units) a sponsor key of this client gives each new account
    /// on top of the storage deposit account creation itself makes: 0 by
    /// default, as the sponsor service gives ([`sponsor::INITIAL_FLOW`], which
    /// says why); more only for an operator funding its own accounts.
    pub initial_flow: u64,
    pub poll_interval: Duration,
    pub seal_timeout: Duration,
}

impl FlowConfig {
    pub fn new(network: Network) -> Self {
        Self {
            network,
            sponsor: None,
            payer: None,
            gas_limit: 9999,
            initial_flow: sponsor::INITIAL_FLOW,
            poll_interval: Duration::from_millis(100),
            seal_timeout: Duration::from_secs(60),
        }
    }
}

/// The marketplace on Flow.
#[derive(Debug)]
pub struct FlowLedger {
    client: AccessClient,
    config: FlowConfig,
    id: LedgerId,
    marketplace: Address,
    event_prefix: String,
    signers: RwLock<HashMap<Address, FlowSigner>>,
    // Transactions the sponsor proposes itself take its key's sequence number
    // in turn.
    sponsor_lock: tokio::sync::Mutex<()>,
}

fn net(e: FlowError) -> Error {
    e.into()
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("unexpected {what} from the Flow contracts: {e}"))
}

impl FlowLedger {
    /// Connects to the network's Access API. FlowNet's contracts must be
    /// deployed (see [`FlowLedger::deploy`]).
    pub async fn connect(config: FlowConfig) -> Result<Self, Error> {
        let client = AccessClient::connect(&config.network.access_api)
            .await
            .map_err(net)?;
        let chain_id = client.chain_id().await.map_err(net)?;
        if chain_id != config.network.chain_id {
            return Err(Error::InvalidInput(format!(
                "{} serves chain {chain_id}, not {} ({})",
                config.network.access_api, config.network.chain_id, config.network.name
            )));
        }
        let marketplace = config.network.marketplace().map_err(net)?;
        let id = ledger_id(&chain_id, marketplace);
        let ledger = Self {
            event_prefix: format!("A.{}.FlowNetMarketplace.", hex::encode(marketplace.0)),
            client,
            id,
            marketplace,
            signers: RwLock::default(),
            sponsor_lock: tokio::sync::Mutex::new(()),
            config,
        };
        if let Some(s) = ledger.config.sponsor.clone() {
            ledger.add_signer(s);
        }
        Ok(ledger)
    }

    /// Deploys FlowNet's contracts to `admin`'s account with `config` (the
    /// windows and the faucet amount; zero disables the faucet, as on
    /// mainnet). The admin keeps the token minter and the faucet sponsor.
    pub async fn deploy(
        network: &Network,
        admin: &FlowSigner,
        config: &LedgerConfig,
    ) -> Result<(), Error> {
        let client = AccessClient::connect(&network.access_api)
            .await
            .map_err(net)?;
        let network = network.clone().with_flownet_at(admin.address);
        for (name, code) in CONTRACTS {
            let code = network.resolve(code).map_err(net)?;
            let (template, args) = if name == "FlowNetMarketplace" {
                (
                    Template::DeployMarketplace,
                    vec![
                        Value::string(code),
                        Value::uint64(config.claim_window_s),
                        Value::uint64(config.fulfil_window_s),
                        Value::uint64(config.bounty_window_s),
                        Value::UFix64(config.faucet_amount.0),
                    ],
                )
            } else {
                (
                    Template::DeployContract,
                    vec![Value::string(name), Value::string(code)],
                )
            };
            let script = network.template(template).map_err(net)?;
            let r = send_as(&client, &script, &args, admin).await?;
            if !r.error_message.is_empty() {
                return Err(Error::InvalidInput(format!(
                    "deploying {name} failed: {}",
                    r.error_message
                )));
            }
        }
        Ok(())
    }

    /// Creates an account for a P-256 / SHA3-256 `public_key` funded with
    /// `flow` FLOW (10⁻⁸ units) by `funder`, before any FlowNet contract is
    /// needed: how the emulator's service account makes FlowNet's admin.
    pub async fn create_funded_account(
        network: &Network,
        funder: &FlowSigner,
        public_key: &[u8; 64],
        flow: u64,
    ) -> Result<Address, Error> {
        let client = AccessClient::connect(&network.access_api)
            .await
            .map_err(net)?;
        let script = network
            .template(Template::CreateFundedAccount)
            .map_err(net)?;
        let args = [Value::string(hex::encode(public_key)), Value::UFix64(flow)];
        let r = send_as(&client, &script, &args, funder).await?;
        if !r.error_message.is_empty() {
            return Err(errors::from_execution_error(&r.error_message));
        }
        created_address(&r)
    }

    /// Runs any Cadence transaction (string imports resolved for this
    /// network) with `signer` as proposer and only authorizer; the sponsor
    /// pays when there is one. For tools and tests: the marketplace's verbs go
    /// through [`Ledger::send`].
    pub async fn run_transaction(
        &self,
        code: &str,
        args: &[Value],
        signer: Address,
    ) -> Result<TransactionResult, Error> {
        let script = self.config.network.resolve(code).map_err(net)?;
        let signer = self.signer(signer).ok_or_else(|| {
            Error::Unauthorized(format!("this Flow client holds no key for {signer}"))
        })?;
        let gas_limit = self.config.gas_limit;
        self.run_script(script, args, &signer, None, &[], gas_limit)
            .await
    }

    pub fn client(&self) -> &AccessClient {
        &self.client
    }

    pub fn network(&self) -> &Network {
        &self.config.network
    }

    /// Lets this client sign for `signer.address`.
    pub fn add_signer(&self, signer: FlowSigner) {
        self.signers
            .write()
            .expect("signers lock")
            .insert(signer.address, signer);
    }

    fn signer(&self, address: Address) -> Option<FlowSigner> {
        self.signers
            .read()
            .expect("signers lock")
            .get(&address)
            .cloned()
    }

    /// A wallet for `key` at its Flow `address`, whose transactions this
    /// client signs with the same key (key index 0).
    pub fn wallet(self: &Arc<Self>, key: SigningKey, address: Address) -> Wallet<FlowLedger> {
        self.add_signer(FlowSigner::new(address, 0, FlowKey::from_core(&key)));
        Wallet::with_address(self.clone(), key, address)
    }

    /// The ledger id envelopes for this deployment name.
    pub fn id(&self) -> LedgerId {
        self.id
    }

    /// Creates a FlowNet account for `key` (P-256 / SHA3-256, key index 0),
    /// paid by the sponsor (its key, or the sponsor service, to which the key
    /// proves itself with a signed `create_account` envelope), and returns
    /// its address.
    pub async fn create_account(&self, key: &SigningKey) -> Result<Address, Error> {
        let public_key = key.public_key();
        let signed = flownet_core::Envelope {
            ledger: self.id,
            signer: Address::derive(&public_key),
            sequence: 0,
            action: Action::CreateAccount {
                public_key,
                hash_algo: flownet_core::crypto::HashAlgo::Sha3_256,
            },
        }
        .sign(key);
        // This client solves the sponsor's proof of work itself.
        let (_, address) = self.create_account_for(&signed, None, true).await?;
        self.add_signer(FlowSigner::new(address, 0, FlowKey::from_core(key)));
        Ok(address)
    }

    /// Creates the account of a `create_account` envelope a client signed,
    /// with the client's `proof` of the sponsor's work (see
    /// [`FlowLedger::account_challenge`]); this client does none of the work
    /// itself: for a gateway relaying a browser's envelope.
    pub async fn create_account_proved(
        &self,
        signed: SignedEnvelope,
        proof: Option<Proof>,
    ) -> Result<Receipt, Error> {
        let (r, address) = self
            .create_account_for(&signed, proof.as_ref(), false)
            .await?;
        let outcome = Outcome {
            account: Some(address),
            ..Outcome::default()
        };
        self.receipt(&r, &signed, outcome).await
    }

    /// The proof-of-work challenge the payer sets before it creates an account
    /// for `key`, `None` when it sets none (or pays with a key of this client).
    pub async fn account_challenge(&self, key: &PublicKey) -> Result<Option<Challenge>, Error> {
        match (&self.config.sponsor, &self.config.payer) {
            (None, Some(payer)) => Ok(payer.account_challenge(key).await?),
            _ => Ok(None),
        }
    }

    /// Creates the account of a checked `create_account` envelope; `solve`:
    /// without a `proof`, this client does the payer's work itself.
    async fn create_account_for(
        &self,
        signed: &SignedEnvelope,
        proof: Option<&Proof>,
        solve: bool,
    ) -> Result<(TransactionResult, Address), Error> {
        let (public_key, hash_algo) = sponsor::check_create_account(signed, self.id)?;
        let sponsor = match (&self.config.sponsor, &self.config.payer) {
            (Some(s), _) => s.clone(),
            (None, Some(payer)) => {
                let solved;
                let proof = match proof {
                    None if solve => {
                        solved = match payer.account_challenge(&public_key).await? {
                            Some(c) => {
                                let key = *public_key.as_bytes();
                                Some(
                                    tokio::task::spawn_blocking(move || {
                                        pow::solve_challenge(&c, &key)
                                    })
                                    .await
                                    .map_err(|e| Error::Storage(e.to_string()))?
                                    .map_err(Error::Unauthorized)?,
                                )
                            }
                            None => None,
                        };
                        solved.as_ref()
                    }
                    other => other,
                };
                return self
                    .create_account_remote(payer, signed, &public_key, proof)
                    .await;
            }
            (None, None) => {
                return Err(Error::Unauthorized(
                    "creating accounts on Flow needs a sponsor (a key in FLOWNET_FLOW_SPONSOR, or a \
                     sponsor service in FLOWNET_FLOW_SPONSOR_URL; or create the account with the \
                     Flow CLI and run setup_account)"
                        .into(),
                ));
            }
        };
        let r = self
            .run(
                Template::CreateAccount,
                &[
                    Value::string(hex::encode(public_key.as_bytes())),
                    Value::uint8(hash_algo.flow_code()),
                    Value::UFix64(self.config.initial_flow),
                ],
                &sponsor,
                None,
                &[],
            )
            .await?;
        let address = created_address(&r)?;
        Ok((r, address))
    }

    /// Asks the remote payer to create the account, then checks on chain
    /// what it did rather than trusting its answer.
    async fn create_account_remote(
        &self,
        payer: &Arc<dyn Payer>,
        signed: &SignedEnvelope,
        public_key: &PublicKey,
        proof: Option<&Proof>,
    ) -> Result<(TransactionResult, Address), Error> {
        let created = payer.create_account(signed, proof).await?;
        let r = self
            .client
            .wait_sealed(
                created.transaction,
                self.config.poll_interval,
                self.config.seal_timeout,
            )
            .await
            .map_err(net)?;
        if !r.error_message.is_empty() {
            return Err(errors::from_execution_error(&r.error_message));
        }
        let address = created_address(&r)?;
        let info = self
            .client
            .account(address)
            .await
            .map_err(net)?
            .ok_or_else(|| Error::NotFound(format!("account {address}")))?;
        if address != created.address
            || !info
                .keys
                .iter()
                .any(|k| !k.revoked && k.public_key == public_key.as_bytes())
        {
            return Err(Error::Storage(format!(
                "the sponsor service answered account {} but its transaction created {address}, \
                 which does not hold key {public_key}",
                created.address
            )));
        }
        Ok((r, address))
    }

    /// Builds, signs, sends and seals one template transaction. `proposer` is
    /// the first authorizer; `extra` are further authorizers; the payer is the
    /// sponsor when there is one. `sequence` is the proposal key's sequence
    /// number, read from chain when `None`.
    async fn run(
        &self,
        template: Template,
        args: &[Value],
        proposer: &FlowSigner,
        sequence: Option<u64>,
        extra: &[FlowSigner],
    ) -> Result<TransactionResult, Error> {
        let script = self.config.network.template(template).map_err(net)?;
        // The template's own limit: a sponsor pays for no more.
        let gas_limit = self.config.gas_limit.min(template.gas_limit());
        self.run_script(script, args, proposer, sequence, extra, gas_limit)
            .await
    }

    async fn run_script(
        &self,
        script: String,
        args: &[Value],
        proposer: &FlowSigner,
        sequence: Option<u64>,
        extra: &[FlowSigner],
        gas_limit: u64,
    ) -> Result<TransactionResult, Error> {
        let remote = match (&self.config.sponsor, &self.config.payer) {
            (None, Some(p)) => Some(p.clone()),
            _ => None,
        };
        let payer = match &remote {
            Some(r) => FlowSigner::new(r.address(), 0, proposer.key.clone()),
            None => self
                .config
                .sponsor
                .clone()
                .unwrap_or_else(|| proposer.clone()),
        };
        let is_sponsor = self
            .config
            .sponsor
            .as_ref()
            .is_some_and(|s| s.address == proposer.address);
        let _guard = if is_sponsor {
            Some(self.sponsor_lock.lock().await)
        } else {
            None
        };
        let sequence = match sequence {
            Some(s) => s,
            None => proposal_sequence(&self.client, proposer).await?,
        };
        let mut authorizers = vec![proposer.address];
        authorizers.extend(extra.iter().map(|s| s.address));
        let reference = self.client.latest_block(true).await.map_err(net)?;
        let mut tx = Transaction::new(
            script,
            args.iter().map(Value::to_json_bytes).collect(),
            reference.id,
            gas_limit,
            ProposalKey {
                address: proposer.address,
                key_index: proposer.key_index,
                sequence_number: sequence,
            },
            payer.address,
            authorizers,
        );
        let mut signed = Vec::new();
        for s in std::iter::once(proposer).chain(extra) {
            if s.address != payer.address && !signed.contains(&s.address) {
                tx.sign_payload(s.address, s.key_index, &s.key)
                    .map_err(net)?;
                signed.push(s.address);
            }
        }
        let refused = |e: FlowError| {
            if e.to_string().contains("sequence number") {
                Error::BadSequence {
                    address: proposer.address,
                    expected: sequence.saturating_add(1),
                    got: sequence,
                }
            } else {
                net(e)
            }
        };
        // The faucet is the one template where the payer also authorizes.
        let faucet = tx.authorizers.contains(&payer.address);
        let id = match &remote {
            Some(r) if faucet => r.faucet(tx).await.map_err(|e| match e {
                super::SponsorError::Access(m) => refused(FlowError::Access(m)),
                other => other.into(),
            })?,
            Some(r) => r.pay(tx).await.map_err(|e| match e {
                super::SponsorError::Access(m) => refused(FlowError::Access(m)),
                other => other.into(),
            })?,
            None => {
                tx.sign_envelope(payer.address, payer.key_index, &payer.key)
                    .map_err(net)?;
                self.client.send_transaction(&tx).await.map_err(refused)?
            }
        };
        let r = self
            .client
            .wait_sealed(id, self.config.poll_interval, self.config.seal_timeout)
            .await
            .map_err(net)?;
        if !r.error_message.is_empty() {
            return Err(errors::from_execution_error(&r.error_message));
        }
        Ok(r)
    }

    async fn script(&self, template: Template, args: &[Value]) -> Result<Value, Error> {
        let code = self.config.network.template(template).map_err(net)?;
        self.client
            .execute_script(code.as_bytes(), args)
            .await
            .map_err(net)
    }

    /// The FlowNet events of blocks `start..=end` whose name is `event`
    /// (`TaskSubmitted`, `TaskClaimed`, …): the node's task feed without
    /// polling every task.
    pub async fn events(
        &self,
        event: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<super::access::BlockEvents>, Error> {
        self.client
            .events(&format!("{}{event}", self.event_prefix), start, end)
            .await
            .map_err(net)
    }

    /// What a sealed FlowNet transaction did, read from its events (task id,
    /// NFT, amount credited), as [`Ledger::send`]'s receipt carries it.
    pub fn outcome(&self, r: &TransactionResult) -> Result<Outcome, Error> {
        let mut outcome = Outcome::default();
        for e in &r.events {
            let Some(name) = e.r#type.strip_prefix(&self.event_prefix) else {
                continue;
            };
            let v = &e.value;
            let field_u64 = |f: &str| {
                v.field(f)
                    .and_then(Value::as_u64)
                    .map_err(|e| corrupt("event", e))
            };
            let field_amount = |f: &str| {
                v.field(f)
                    .and_then(Value::as_ufix64)
                    .map(Amount)
                    .map_err(|e| corrupt("event", e))
            };
            match name {
                "TaskSubmitted" | "TaskClaimed" | "TaskExpired" | "BountySwept" => {
                    outcome.task = Some(field_u64("id")?);
                }
                "TaskCancelled" => {
                    outcome.task = Some(field_u64("id")?);
                    outcome.credited = Some(field_amount("refunded")?);
                }
                "TaskFulfilled" => {
                    outcome.task = Some(field_u64("id")?);
                    outcome.nft = Some(field_u64("nft")?);
                    outcome.credited = Some(field_amount("toNode")?);
                }
                "TaskRated" => {
                    outcome.task = Some(field_u64("id")?);
                    outcome.credited = Some(field_amount("bounty")?);
                }
                "FaucetGranted" => outcome.credited = Some(field_amount("amount")?),
                _ => {}
            }
        }
        Ok(outcome)
    }

    /// The template and the arguments that carry out `action` on Flow: the one
    /// mapping from the core's verbs to Cadence, used by [`Ledger::send`] and by
    /// clients that build the transaction themselves (the web page with FCL).
    pub fn arguments(action: &Action) -> Result<(Template, Vec<Value>), Error> {
        use Value as V;
        Ok(match action {
            Action::CreateAccount { .. } => {
                return Err(Error::InvalidInput(
                    "create_account must be the account's first envelope".into(),
                ));
            }
            Action::Faucet => (Template::Faucet, vec![]),
            Action::Transfer { to, amount } => (
                Template::Transfer,
                vec![V::Address(*to), V::UFix64(amount.0)],
            ),
            Action::RegisterNode {
                name,
                endpoint,
                models,
            } => (
                Template::RegisterNode,
                vec![
                    V::string(name.as_str()),
                    V::string(endpoint.as_str()),
                    V::Array(
                        models
                            .iter()
                            .map(|m| V::string(m.model_id.as_str()))
                            .collect(),
                    ),
                    V::Array(
                        models
                            .iter()
                            .map(|m| V::string(m.weights_sha256.to_hex()))
                            .collect(),
                    ),
                    V::Array(models.iter().map(|m| V::UFix64(m.price.0)).collect()),
                    V::Array(models.iter().map(|m| V::uint8(m.unit.code())).collect()),
                ],
            ),
            Action::SetNodeActive { active } => (Template::SetNodeActive, vec![V::Bool(*active)]),
            Action::Submit {
                node,
                model_id,
                prompt,
                params,
                max_price,
                input,
                max_units,
            } => (
                Template::Submit,
                vec![
                    V::Address(*node),
                    V::string(model_id.as_str()),
                    V::string(prompt.as_str()),
                    V::string(params.as_str()),
                    V::UFix64(max_price.0),
                    V::Optional(
                        input
                            .as_ref()
                            .map(|i| Box::new(V::string(i.sha256.to_hex()))),
                    ),
                    V::uint64(input.as_ref().map_or(0, |i| i.size)),
                    V::Optional(input.as_ref().map(|i| Box::new(V::string(i.uri.as_str())))),
                    V::uint64(*max_units),
                ],
            ),
            Action::Cancel { task } => (Template::Cancel, vec![V::uint64(*task)]),
            Action::Claim { task } => (Template::Claim, vec![V::uint64(*task)]),
            Action::Fulfil {
                task,
                result,
                units,
            } => (
                Template::Fulfil,
                vec![
                    V::uint64(*task),
                    V::string(result.sha256.to_hex()),
                    V::string(result.uri.as_str()),
                    V::string(result.mime.as_str()),
                    V::uint64(result.size),
                    V::Optional(units.map(|u| Box::new(V::uint64(u)))),
                ],
            ),
            Action::Expire { task } => (Template::Expire, vec![V::uint64(*task)]),
            Action::Decline { task, reason } => (
                Template::Decline,
                vec![V::uint64(*task), V::string(reason.as_str())],
            ),
            Action::Rate { task, stars } => {
                (Template::Rate, vec![V::uint64(*task), V::uint8(*stars)])
            }
            Action::Sweep { task } => (Template::Sweep, vec![V::uint64(*task)]),
        })
    }

    async fn receipt(
        &self,
        r: &TransactionResult,
        signed: &SignedEnvelope,
        outcome: Outcome,
    ) -> Result<Receipt, Error> {
        let at = self
            .client
            .block_by_id(r.block_id)
            .await
            .map_err(net)?
            .timestamp;
        Ok(Receipt {
            hash: Digest32(r.id),
            signer: signed.envelope.signer,
            sequence: signed.envelope.sequence,
            action: signed.envelope.action.name().to_owned(),
            outcome,
            at,
            height: r.block_height,
        })
    }

    /// The key of `info` FlowNet uses: the registered signer's, else the first
    /// usable P-256 key.
    fn flownet_key<'a>(
        &self,
        info: &'a FlowAccountInfo,
    ) -> Result<&'a super::access::AccountKey, Error> {
        let wanted = self.signer(info.address).map(|s| s.key_index);
        info.keys
            .iter()
            .filter(|k| !k.revoked && k.signature_algorithm == Some(SignatureAlgorithm::EcdsaP256))
            .find(|k| wanted.is_none_or(|w| k.index == w))
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "account {} has no usable ECDSA_P256 key{}: FlowNet keys are P-256",
                    info.address,
                    wanted.map(|w| format!(" at index {w}")).unwrap_or_default()
                ))
            })
    }
}

/// Sends `script` with `signer` as proposer, payer and only authorizer, and
/// waits for the seal. Used before a FlowLedger exists (deployment).
async fn send_as(
    client: &AccessClient,
    script: &str,
    args: &[Value],
    signer: &FlowSigner,
) -> Result<TransactionResult, Error> {
    let seq = proposal_sequence(client, signer).await?;
    let mut tx = Transaction::new(
        script,
        args.iter().map(Value::to_json_bytes).collect(),
        client.latest_block(true).await.map_err(net)?.id,
        9999,
        ProposalKey {
            address: signer.address,
            key_index: signer.key_index,
            sequence_number: seq,
        },
        signer.address,
        vec![signer.address],
    );
    tx.sign_envelope(signer.address, signer.key_index, &signer.key)
        .map_err(net)?;
    let id = client.send_transaction(&tx).await.map_err(net)?;
    client
        .wait_sealed(id, Duration::from_millis(100), Duration::from_secs(60))
        .await
        .map_err(net)
}

async fn proposal_sequence(client: &AccessClient, signer: &FlowSigner) -> Result<u64, Error> {
    let info = client
        .account(signer.address)
        .await
        .map_err(net)?
        .ok_or_else(|| Error::NotFound(format!("account {}", signer.address)))?;
    info.keys
        .iter()
        .find(|k| k.index == signer.key_index)
        .map(|k| k.sequence_number)
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "account {} has no key {}",
                signer.address, signer.key_index
            ))
        })
}

// --- decoding the contracts' records -------------------------------------------------

fn f<'a>(v: &'a Value, name: &str) -> Result<&'a Value, Error> {
    v.field(name).map_err(|e| corrupt("record", e))
}
fn u64_of(v: &Value, name: &str) -> Result<u64, Error> {
    f(v, name)?.as_u64().map_err(|e| corrupt("record", e))
}
fn opt_u64(v: &Value, name: &str) -> Result<Option<u64>, Error> {
    match v.opt_field(name).map_err(|e| corrupt("record", e))? {
        None => Ok(None),
        Some(x) => x.as_u64().map(Some).map_err(|e| corrupt("record", e)),
    }
}
fn str_of(v: &Value, name: &str) -> Result<String, Error> {
    Ok(f(v, name)?
        .as_str()
        .map_err(|e| corrupt("record", e))?
        .to_owned())
}
fn addr_of(v: &Value, name: &str) -> Result<Address, Error> {
    f(v, name)?.as_address().map_err(|e| corrupt("record", e))
}
fn amount_of(v: &Value, name: &str) -> Result<Amount, Error> {
    f(v, name)?
        .as_ufix64()
        .map(Amount)
        .map_err(|e| corrupt("record", e))
}
fn bool_of(v: &Value, name: &str) -> Result<bool, Error> {
    f(v, name)?.as_bool().map_err(|e| corrupt("record", e))
}
fn digest_of(v: &Value, name: &str) -> Result<Digest32, Error> {
    Digest32::from_hex(&str_of(v, name)?)
}

fn status_of(v: &Value) -> Result<TaskStatus, Error> {
    let raw = u64_of(f(v, "status")?, "rawValue")?;
    TaskStatus::ALL
        .get(raw as usize)
        .copied()
        .ok_or_else(|| corrupt("task status", raw))
}

fn node_from(v: &Value) -> Result<Node, Error> {
    let models = f(v, "models")?
        .as_array()
        .map_err(|e| corrupt("node", e))?
        .iter()
        .map(|m| {
            Ok(OfferedModel {
                model_id: str_of(m, "modelId")?,
                weights_sha256: digest_of(m, "weightsSha256")?,
                price: amount_of(m, "price")?,
                unit: PriceUnit::from_code(
                    u8::try_from(u64_of(m, "unit")?).map_err(|e| corrupt("offer", e))?,
                )?,
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(Node {
        owner: addr_of(v, "owner")?,
        name: str_of(v, "name")?,
        endpoint: str_of(v, "endpoint")?,
        models,
        active: bool_of(v, "active")?,
        stats: NodeStats {
            fulfilled: u64_of(v, "fulfilled")?,
            missed: u64_of(v, "missed")?,
            declined: u64_of(v, "declined")?,
            ratings_count: u64_of(v, "ratingsCount")?,
            ratings_sum: u64_of(v, "ratingsSum")?,
            rated_paid: amount_of(v, "ratedPaid")?.0,
            rated_paid_stars: amount_of(v, "ratedPaidStars")?.0,
            community_count: u64_of(v, "communityCount")?,
            community_sum: u64_of(v, "communitySum")?,
        },
        registered_at: u64_of(v, "registeredAt")?,
    })
}

fn task_from(v: &Value) -> Result<Task, Error> {
    let result = match v.opt_field("result").map_err(|e| corrupt("task", e))? {
        None => None,
        Some(r) => Some(OutputRef {
            sha256: digest_of(r, "sha256")?,
            uri: str_of(r, "uri")?,
            mime: str_of(r, "mime")?,
            size: u64_of(r, "size")?,
        }),
    };
    let input = match v.opt_field("input").map_err(|e| corrupt("task", e))? {
        None => None,
        Some(i) => Some(InputRef {
            sha256: digest_of(i, "sha256")?,
            size: u64_of(i, "size")?,
            uri: str_of(i, "uri")?,
        }),
    };
    let unit_price = match v.opt_field("unitPrice").map_err(|e| corrupt("task", e))? {
        None => None,
        Some(p) => Some(Amount(p.as_ufix64().map_err(|e| corrupt("task", e))?)),
    };
    Ok(Task {
        id: u64_of(v, "id")?,
        requester: addr_of(v, "requester")?,
        node: addr_of(v, "node")?,
        model_id: str_of(v, "modelId")?,
        weights_sha256: digest_of(v, "weightsSha256")?,
        prompt: str_of(v, "prompt")?,
        params: str_of(v, "params")?,
        price: amount_of(v, "price")?,
        input,
        unit_price,
        max_units: u64_of(v, "maxUnits")?,
        units: opt_u64(v, "units")?,
        refunded: amount_of(v, "refunded")?,
        declined_reason: match v
            .opt_field("declinedReason")
            .map_err(|e| corrupt("task", e))?
        {
            None => None,
            Some(r) => Some(r.as_str().map_err(|e| corrupt("task", e))?.to_owned()),
        },
        status: status_of(v)?,
        submitted_at: u64_of(v, "submittedAt")?,
        claim_deadline: u64_of(v, "claimDeadline")?,
        claimed_at: opt_u64(v, "claimedAt")?,
        fulfil_deadline: opt_u64(v, "fulfilDeadline")?,
        fulfilled_at: opt_u64(v, "fulfilledAt")?,
        result,
        nft: opt_u64(v, "nft")?,
        bounty_pool: amount_of(v, "bountyPool")?,
        bounty_share: amount_of(v, "bountyShare")?,
        bounty_paid: u8::try_from(u64_of(v, "bountyPaid")?).map_err(|e| corrupt("task", e))?,
    })
}

fn rating_from(v: &Value) -> Result<Rating, Error> {
    Ok(Rating {
        task: u64_of(v, "task")?,
        rater: addr_of(v, "rater")?,
        stars: u8::try_from(u64_of(v, "stars")?).map_err(|e| corrupt("rating", e))?,
        by_requester: bool_of(v, "byRequester")?,
        bounty: amount_of(v, "bounty")?,
        at: u64_of(v, "at")?,
    })
}

fn nft_from(v: &Value, owner: Address) -> Result<OutputNft, Error> {
    Ok(OutputNft {
        id: u64_of(v, "id")?,
        owner,
        task: u64_of(v, "task")?,
        prompt: str_of(v, "prompt")?,
        model_id: str_of(v, "modelId")?,
        weights_sha256: digest_of(v, "weightsSha256")?,
        params: str_of(v, "params")?,
        input: match v.opt_field("inputSha256").map_err(|e| corrupt("nft", e))? {
            None => None,
            Some(sha) => Some(InputRef {
                sha256: Digest32::from_hex(sha.as_str().map_err(|e| corrupt("nft", e))?)?,
                size: opt_u64(v, "inputSize")?.unwrap_or_default(),
                uri: match v.opt_field("inputUri").map_err(|e| corrupt("nft", e))? {
                    Some(u) => u.as_str().map_err(|e| corrupt("nft", e))?.to_owned(),
                    None => String::new(),
                },
            }),
        },
        units: opt_u64(v, "units")?,
        output: OutputRef {
            sha256: digest_of(v, "outputSha256")?,
            uri: str_of(v, "outputUri")?,
            mime: str_of(v, "outputMime")?,
            size: u64_of(v, "outputSize")?,
        },
        node: addr_of(v, "node")?,
        requester: addr_of(v, "requester")?,
        minted_at: u64_of(v, "mintedAt")?,
    })
}

#[async_trait]
impl Ledger for FlowLedger {
    async fn info(&self) -> Result<LedgerInfo, Error> {
        let v = self.script(Template::GetInfo, &[]).await?;
        Ok(LedgerInfo {
            id: self.id,
            network: self.config.network.name.clone(),
            config: LedgerConfig {
                claim_window_s: u64_of(&v, "claimWindow")?,
                fulfil_window_s: u64_of(&v, "fulfilWindow")?,
                bounty_window_s: u64_of(&v, "bountyWindow")?,
                faucet_amount: amount_of(&v, "faucetAmount")?,
            },
            now: u64_of(&v, "now")?,
            height: u64_of(&v, "height")?,
            globals: Globals {
                total_minted: amount_of(&v, "totalMinted")?,
                escrowed: amount_of(&v, "escrowed")?,
                bounty_pools: amount_of(&v, "bountyPools")?,
                treasury: amount_of(&v, "treasury")?,
                task_count: u64_of(&v, "taskCount")?,
                nft_count: u64_of(&v, "nftCount")?,
            },
        })
    }

    async fn send(&self, signed: SignedEnvelope) -> Result<Receipt, Error> {
        let env = &signed.envelope;
        if env.ledger != self.id {
            return Err(Error::InvalidInput(format!(
                "envelope is for ledger {}, this is ledger {}",
                env.ledger, self.id
            )));
        }
        if let Action::CreateAccount {
            public_key,
            hash_algo,
        } = &env.action
        {
            // The Flow account key signs with the same hash as the core key:
            // SHA3-256 for the CLI's keys, SHA2-256 for WebCrypto's.
            if !signed.verify_with(public_key, *hash_algo) {
                return Err(Error::BadSignature(env.signer));
            }
            let (r, address) = self.create_account_for(&signed, None, true).await?;
            let outcome = Outcome {
                account: Some(address),
                ..Outcome::default()
            };
            return self.receipt(&r, &signed, outcome).await;
        }
        let mut signer = self.signer(env.signer).ok_or_else(|| {
            Error::Unauthorized(format!(
                "this Flow client holds no key for {} (open a wallet for it first)",
                env.signer
            ))
        })?;
        let info = self
            .client
            .account(env.signer)
            .await
            .map_err(net)?
            .ok_or_else(|| Error::NotFound(format!("account {} (create it first)", env.signer)))?;
        let key = self.flownet_key(&info)?;
        let on_chain = PublicKey::from_bytes(&key.public_key)?;
        // Envelope and transaction are signed with the hash the account's key
        // was registered with (SHA2-256 for WebCrypto's keys).
        let hash = key
            .hash_algorithm
            .unwrap_or(super::keys::HashAlgorithm::Sha3_256);
        let core_hash = hash.to_core();
        if !signed.verify_with(&on_chain, core_hash) {
            return Err(Error::BadSignature(env.signer));
        }
        if signer.key.hash_algorithm() != hash {
            signer.key =
                FlowKey::from_bytes(SignatureAlgorithm::EcdsaP256, hash, &signer.key.to_bytes())
                    .map_err(net)?;
        }
        if env.sequence != key.sequence_number {
            return Err(Error::BadSequence {
                address: env.signer,
                expected: key.sequence_number,
                got: env.sequence,
            });
        }
        let (template, args) = Self::arguments(&env.action)?;
        let mut extra = Vec::new();
        if matches!(env.action, Action::Faucet) {
            extra.push(match (&self.config.sponsor, &self.config.payer) {
                (Some(s), _) => s.clone(),
                // The sponsor service signs as payer and second authorizer:
                // no key of its is needed here.
                (None, Some(p)) => FlowSigner::new(p.address(), 0, signer.key.clone()),
                (None, None) => {
                    return Err(Error::Faucet(
                        "this Flow client has no sponsor to grant the faucet".into(),
                    ));
                }
            });
        }
        let r = self
            .run(template, &args, &signer, Some(env.sequence), &extra)
            .await?;
        let outcome = self.outcome(&r)?;
        self.receipt(&r, &signed, outcome).await
    }

    async fn account(&self, address: Address) -> Result<Option<Account>, Error> {
        let Some(info) = self.client.account(address).await.map_err(net)? else {
            return Ok(None);
        };
        let key = self.flownet_key(&info)?;
        let v = self
            .script(Template::GetAccount, &[Value::Address(address)])
            .await?;
        Ok(Some(Account {
            address,
            public_key: PublicKey::from_bytes(&key.public_key)?,
            sequence: key.sequence_number,
            balance: amount_of(&v, "balance")?,
            faucet_used: bool_of(&v, "faucetUsed")?,
            hash_algo: key.hash_algorithm.map_or(
                flownet_core::crypto::HashAlgo::Sha3_256,
                HashAlgorithm::to_core,
            ),
        }))
    }

    async fn node(&self, owner: Address) -> Result<Option<Node>, Error> {
        match self
            .script(Template::GetNode, &[Value::Address(owner)])
            .await?
            .into_option()
        {
            Some(v) => Ok(Some(node_from(&v)?)),
            None => Ok(None),
        }
    }

    async fn nodes(&self) -> Result<Vec<Node>, Error> {
        let v = self.script(Template::GetNodes, &[]).await?;
        let mut nodes = v
            .as_array()
            .map_err(|e| corrupt("nodes", e))?
            .iter()
            .map(node_from)
            .collect::<Result<Vec<_>, Error>>()?;
        rank_nodes(&mut nodes);
        Ok(nodes)
    }

    async fn task(&self, id: TaskId) -> Result<Option<Task>, Error> {
        match self
            .script(Template::GetTask, &[Value::uint64(id)])
            .await?
            .into_option()
        {
            Some(v) => Ok(Some(task_from(&v)?)),
            None => Ok(None),
        }
    }

    async fn tasks(&self, query: TaskQuery) -> Result<Vec<Task>, Error> {
        let status = query
            .status
            .map(|s| Value::uint8(TaskStatus::ALL.iter().position(|x| *x == s).unwrap_or(0) as u8));
        let args = [
            Value::optional(query.node.map(Value::Address)),
            Value::optional(query.requester.map(Value::Address)),
            Value::optional(status),
            Value::uint64(query.after.unwrap_or(0)),
            Value::uint32(query.limit.unwrap_or(0)),
        ];
        let v = self.script(Template::GetTasks, &args).await?;
        v.as_array()
            .map_err(|e| corrupt("tasks", e))?
            .iter()
            .map(task_from)
            .collect()
    }

    async fn ratings(&self, task: TaskId) -> Result<Vec<Rating>, Error> {
        let v = self
            .script(Template::GetRatings, &[Value::uint64(task)])
            .await?;
        v.as_array()
            .map_err(|e| corrupt("ratings", e))?
            .iter()
            .map(rating_from)
            .collect()
    }

    async fn nfts(&self, owner: Address) -> Result<Vec<OutputNft>, Error> {
        let v = self
            .script(Template::GetNfts, &[Value::Address(owner)])
            .await?;
        let mut out = v
            .as_array()
            .map_err(|e| corrupt("nfts", e))?
            .iter()
            .map(|n| nft_from(n, owner))
            .collect::<Result<Vec<_>, Error>>()?;
        out.sort_by_key(|n| n.id);
        Ok(out)
    }
}

impl FlowLedger {
    /// The address FlowNet's contracts are deployed at.
    pub fn marketplace(&self) -> Address {
        self.marketplace
    }
}
