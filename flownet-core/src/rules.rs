//! The marketplace rulebook: pure, deterministic state transitions over a [`StateStore`].
//!
//! Both ledgers run exactly this code: the embedded ledger over SQLite, the in-memory
//! ledger over maps, and the Cadence contract mirrors it rule for rule. Time comes in as
//! an argument; nothing here reads a clock or does I/O.

use crate::{
    Account, Action, Address, Amount, Error, Globals, InputRef, LedgerConfig, Node, NodeStats,
    OfferedModel, OutputNft, OutputRef, Rating, Result, SignedEnvelope, Task, TaskId, TaskStatus,
    Timestamp,
};

/// Largest prompt, in bytes.
pub const MAX_PROMPT_BYTES: usize = 4096;
/// Largest params JSON, in bytes.
pub const MAX_PARAMS_BYTES: usize = 4096;

/// What the next rater of `task` earns while its bounty window is open: a share of
/// the pool, and the last paid rater the rounding remainder, so the pool empties
/// exactly; nothing once [`BOUNTY_RATERS`] raters have been paid.
pub fn next_bounty(task: &Task) -> Amount {
    if task.bounty_paid >= BOUNTY_RATERS {
        Amount::ZERO
    } else if task.bounty_paid + 1 == BOUNTY_RATERS {
        task.bounty_pool
    } else {
        task.bounty_share.min(task.bounty_pool)
    }
}

/// The prompt size limit of a submission. The rulebook applies it; frontends apply it
/// too before anything is signed or paid, so a mistake costs nothing.
pub fn check_prompt_size(prompt: &str) -> Result<()> {
    if prompt.len() > MAX_PROMPT_BYTES {
        return Err(Error::PromptTooLarge {
            size: prompt.len(),
            max: MAX_PROMPT_BYTES,
        });
    }
    Ok(())
}

/// The params size limit of a submission, applied as [`check_prompt_size`] is.
pub fn check_params_size(params: &str) -> Result<()> {
    if params.len() > MAX_PARAMS_BYTES {
        return Err(Error::ParamsTooLarge {
            size: params.len(),
            max: MAX_PARAMS_BYTES,
        });
    }
    Ok(())
}
/// Largest input blob a task can name, in bytes.
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;
/// Most units (output tokens) one metered task can ask for.
pub const MAX_TASK_UNITS: u64 = 1 << 20;
/// The units a metered offer's price is for (1,000 tokens).
pub const UNITS_PER_PRICE: u64 = 1000;

/// What `units` units cost at `unit_price` per [`UNITS_PER_PRICE`]: rounded down in
/// base units, the Cadence contract's `unitPrice * UFix64(units) / 1000.0`.
pub fn metered_cost(unit_price: Amount, units: u64) -> Result<Amount> {
    let cost = u128::from(unit_price.0) * u128::from(units) / u128::from(UNITS_PER_PRICE);
    u64::try_from(cost).map(Amount).map_err(|_| Error::Overflow)
}

/// What a submission escrows for `offer`, and the task's metering: `(price,
/// unit_price)`. A per-task offer takes `max_units` 0; a metered one 1 to
/// [`MAX_TASK_UNITS`]. Frontends call it to show the price before anything is signed.
pub fn escrow_for(offer: &OfferedModel, max_units: u64) -> Result<(Amount, Option<Amount>)> {
    if !offer.unit.is_metered() {
        if max_units != 0 {
            return Err(Error::InvalidInput(format!(
                "model {} is priced per task: max_units must be 0",
                offer.model_id
            )));
        }
        return Ok((offer.price, None));
    }
    if max_units == 0 || max_units > MAX_TASK_UNITS {
        return Err(Error::InvalidInput(format!(
            "model {} is priced per 1,000 tokens: max_units must be 1 to {MAX_TASK_UNITS}",
            offer.model_id
        )));
    }
    Ok((metered_cost(offer.price, max_units)?, Some(offer.price)))
}

/// The units a submission to `offer` escrows for when the requester names no limit:
/// `params.max_tokens` where the params give one, else this.
pub const DEFAULT_MAX_UNITS: u64 = 256;

/// What a requester's side signs for a submission to `offer`: `(max_units, escrow,
/// max_price)`. `max_units` is the requester's limit (else `params.max_tokens`, else
/// [`DEFAULT_MAX_UNITS`]) for a metered offer and 0 otherwise; `escrow` what the ledger
/// will take now; `max_price` the envelope's cap, the escrow at `max_unit_price`
/// (default: the offer's price), so a node that raises its price before the envelope
/// lands cannot charge more. Frontends show `escrow` before anything is signed.
pub fn quote(
    offer: &OfferedModel,
    max_units: Option<u64>,
    params: &serde_json::Map<String, serde_json::Value>,
    max_unit_price: Option<Amount>,
) -> Result<(u64, Amount, Amount)> {
    let units = if offer.unit.is_metered() {
        max_units
            .or_else(|| params.get("max_tokens").and_then(serde_json::Value::as_u64))
            .unwrap_or(DEFAULT_MAX_UNITS)
    } else if max_units.is_some_and(|u| u != 0) {
        return Err(Error::InvalidInput(format!(
            "model {} is priced per task: it takes no token limit",
            offer.model_id
        )));
    } else {
        0
    };
    let (escrow, _) = escrow_for(offer, units)?;
    let capped = OfferedModel {
        price: max_unit_price.unwrap_or(offer.price),
        ..offer.clone()
    };
    let (max_price, _) = escrow_for(&capped, units)?;
    Ok((units, escrow, max_price))
}

/// Whether `uri` is a URL a node may be sent to fetch from: `http://` or `https://`, at
/// most [`MAX_URI_BYTES`], printable ASCII only (no spaces or control characters).
fn check_fetch_uri(uri: &str, what: &str) -> Result<()> {
    let ok = uri.len() <= MAX_URI_BYTES
        && (uri.starts_with("http://") || uri.starts_with("https://"))
        && uri.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "{what} must be an http:// or https:// URL of at most {MAX_URI_BYTES} printable ASCII bytes"
        )))
    }
}

/// The rules of a task's input, applied by the rulebook and by frontends before they
/// pay.
pub fn check_input(input: &InputRef) -> Result<()> {
    if input.size == 0 || input.size > MAX_INPUT_BYTES {
        return Err(Error::InvalidInput(format!(
            "an input is 1 to {MAX_INPUT_BYTES} bytes, this one {}",
            input.size
        )));
    }
    check_fetch_uri(&input.uri, "input uri")
}

/// Largest node name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Largest endpoint URL, in bytes.
pub const MAX_ENDPOINT_BYTES: usize = 256;
/// Most models one node can offer.
pub const MAX_MODELS_PER_NODE: usize = 32;
/// Largest model id, in bytes.
pub const MAX_MODEL_ID_BYTES: usize = 64;
/// Largest output URI, in bytes.
pub const MAX_URI_BYTES: usize = 1024;
/// Largest MIME type, in bytes.
pub const MAX_MIME_BYTES: usize = 128;
/// Largest reason a node gives for declining a task, in bytes.
pub const MAX_DECLINE_REASON_BYTES: usize = 256;
/// How many raters share a task's bounty.
pub const BOUNTY_RATERS: u8 = 3;
/// The node owner's share of a fulfilled task's price, in per mille.
pub const NODE_SHARE_PER_MILLE: u64 = 900;
/// The treasury's share of a fulfilled task's price, in per mille; the rest (75 ‰) is
/// the task's rating bounty.
pub const TREASURY_SHARE_PER_MILLE: u64 = 25;

/// Storage the rules read and write. Implementations hold one transaction's view; the
/// savepoint methods let [`execute`] undo a rejected action while keeping its sequence
/// number consumed.
pub trait StateStore {
    fn account(&self, address: Address) -> Result<Option<Account>>;
    fn put_account(&mut self, account: &Account) -> Result<()>;
    fn node(&self, owner: Address) -> Result<Option<Node>>;
    fn put_node(&mut self, node: &Node) -> Result<()>;
    fn task(&self, id: TaskId) -> Result<Option<Task>>;
    fn put_task(&mut self, task: &Task) -> Result<()>;
    fn rating(&self, task: TaskId, rater: Address) -> Result<Option<Rating>>;
    fn put_rating(&mut self, rating: &Rating) -> Result<()>;
    fn put_nft(&mut self, nft: &OutputNft) -> Result<()>;
    fn globals(&self) -> Result<Globals>;
    fn put_globals(&mut self, globals: &Globals) -> Result<()>;
    fn savepoint(&mut self) -> Result<()>;
    fn rollback_to_savepoint(&mut self) -> Result<()>;
    fn release_savepoint(&mut self) -> Result<()>;
}

/// What an accepted action produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// The task submitted or acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// The NFT minted by a fulfilment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nft: Option<u64>,
    /// Tokens credited to the signer (faucet, refund, payment, bounty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credited: Option<Amount>,
    /// The account created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<Address>,
}

/// Authenticates and applies one signed envelope at time `now`.
///
/// A bad signature or sequence number changes nothing. Once authenticated, the signer's
/// sequence number is consumed whether or not the action is accepted (as on Flow), so a
/// rejected envelope can never be replayed later when it would succeed; a rejected
/// action itself leaves no trace. The caller commits the store's transaction in every
/// case except [`Error::Storage`].
pub fn execute(
    store: &mut impl StateStore,
    config: &LedgerConfig,
    ledger: &crate::LedgerId,
    signed: &SignedEnvelope,
    now: Timestamp,
) -> Result<Outcome> {
    let env = &signed.envelope;
    if env.ledger != *ledger {
        return Err(Error::InvalidInput(format!(
            "envelope is for ledger {}, this is ledger {ledger}",
            env.ledger
        )));
    }
    if let Action::CreateAccount {
        public_key,
        hash_algo,
    } = &env.action
    {
        if Address::derive(public_key) != env.signer {
            return Err(Error::InvalidInput(format!(
                "signer {} is not the address of the key (expected {})",
                env.signer,
                Address::derive(public_key)
            )));
        }
        if !signed.verify_with(public_key, *hash_algo) {
            return Err(Error::BadSignature(env.signer));
        }
        if store.account(env.signer)?.is_some() {
            return Err(Error::AlreadyExists(format!("account {}", env.signer)));
        }
        if env.sequence != 0 {
            return Err(Error::BadSequence {
                address: env.signer,
                expected: 0,
                got: env.sequence,
            });
        }
        store.put_account(&Account {
            address: env.signer,
            public_key: *public_key,
            hash_algo: *hash_algo,
            sequence: 1,
            balance: Amount::ZERO,
            faucet_used: false,
        })?;
        return Ok(Outcome {
            account: Some(env.signer),
            ..Outcome::default()
        });
    }

    let mut account = store
        .account(env.signer)?
        .ok_or_else(|| Error::NotFound(format!("account {} (create it first)", env.signer)))?;
    if !signed.verify_with(&account.public_key, account.hash_algo) {
        return Err(Error::BadSignature(env.signer));
    }
    if env.sequence != account.sequence {
        return Err(Error::BadSequence {
            address: env.signer,
            expected: account.sequence,
            got: env.sequence,
        });
    }

    store.savepoint()?;
    let result = apply(store, config, env.signer, &env.action, now);
    match &result {
        Ok(_) => store.release_savepoint()?,
        Err(Error::Storage(_)) => return result,
        Err(_) => store.rollback_to_savepoint()?,
    }
    // Re-read: the action may have changed the signer's balance.
    account = store.account(env.signer)?.unwrap_or(account);
    account.sequence += 1;
    store.put_account(&account)?;
    result
}

/// Applies an authenticated action. Every check runs before the first write, so an
/// error leaves the store as it was even without a savepoint.
pub fn apply(
    store: &mut impl StateStore,
    config: &LedgerConfig,
    signer: Address,
    action: &Action,
    now: Timestamp,
) -> Result<Outcome> {
    match action {
        Action::CreateAccount { .. } => Err(Error::InvalidInput(
            "create_account must be the account's first envelope".into(),
        )),
        Action::Faucet => faucet(store, config, signer),
        Action::Transfer { to, amount } => transfer(store, signer, *to, *amount),
        Action::RegisterNode {
            name,
            endpoint,
            models,
        } => register_node(store, signer, name, endpoint, models, now),
        Action::SetNodeActive { active } => {
            let mut node = load_node(store, signer)?;
            node.active = *active;
            store.put_node(&node)?;
            Ok(Outcome::default())
        }
        Action::Submit {
            node,
            model_id,
            prompt,
            params,
            max_price,
            input,
            max_units,
        } => submit(
            store,
            config,
            signer,
            Submission {
                node_addr: *node,
                model_id,
                prompt,
                params,
                max_price: *max_price,
                input: input.as_ref(),
                max_units: *max_units,
            },
            now,
        ),
        Action::Cancel { task } => cancel(store, signer, *task),
        Action::Claim { task } => claim(store, config, signer, *task, now),
        Action::Fulfil {
            task,
            result,
            units,
        } => fulfil(store, signer, *task, result, *units, now),
        Action::Expire { task } => expire(store, *task, now),
        Action::Rate { task, stars } => rate(store, config, signer, *task, *stars, now),
        Action::Sweep { task } => sweep(store, config, *task, now),
        Action::Decline { task, reason } => decline(store, signer, *task, reason, now),
    }
}

fn load_account(store: &impl StateStore, a: Address) -> Result<Account> {
    store
        .account(a)?
        .ok_or_else(|| Error::NotFound(format!("account {a}")))
}

fn load_node(store: &impl StateStore, owner: Address) -> Result<Node> {
    store
        .node(owner)?
        .ok_or_else(|| Error::NotFound(format!("node {owner}")))
}

fn load_task(store: &impl StateStore, id: TaskId) -> Result<Task> {
    store
        .task(id)?
        .ok_or_else(|| Error::NotFound(format!("task {id}")))
}

/// The task `id`, which `signer` may `action` only as its addressed node and only while
/// the task is `status`.
fn load_node_task(
    store: &impl StateStore,
    signer: Address,
    id: TaskId,
    status: TaskStatus,
    action: &'static str,
) -> Result<Task> {
    let task = load_task(store, id)?;
    if task.node != signer {
        return Err(Error::WrongNode {
            task: id,
            node: task.node,
        });
    }
    if task.status != status {
        return Err(Error::InvalidState {
            task: id,
            status: task.status,
            action,
        });
    }
    Ok(task)
}

fn credit(store: &mut impl StateStore, to: Address, amount: Amount) -> Result<()> {
    let mut acct = load_account(store, to)?;
    acct.balance = acct.balance.checked_add(amount)?;
    store.put_account(&acct)
}

fn faucet(store: &mut impl StateStore, config: &LedgerConfig, signer: Address) -> Result<Outcome> {
    if config.faucet_amount == Amount::ZERO {
        return Err(Error::Faucet("this ledger has no faucet".into()));
    }
    let mut acct = load_account(store, signer)?;
    if acct.faucet_used {
        return Err(Error::Faucet(format!(
            "account {signer} has already received its welcome amount"
        )));
    }
    let mut g = store.globals()?;
    g.total_minted = g.total_minted.checked_add(config.faucet_amount)?;
    acct.balance = acct.balance.checked_add(config.faucet_amount)?;
    acct.faucet_used = true;
    store.put_globals(&g)?;
    store.put_account(&acct)?;
    Ok(Outcome {
        credited: Some(config.faucet_amount),
        ..Outcome::default()
    })
}

fn transfer(
    store: &mut impl StateStore,
    from: Address,
    to: Address,
    amount: Amount,
) -> Result<Outcome> {
    if amount == Amount::ZERO {
        return Err(Error::InvalidInput(
            "transfer amount must be positive".into(),
        ));
    }
    let mut sender = load_account(store, from)?;
    let mut receiver = load_account(store, to)?;
    if sender.balance < amount {
        return Err(Error::InsufficientFunds {
            needed: amount,
            available: sender.balance,
        });
    }
    if from == to {
        return Ok(Outcome::default());
    }
    sender.balance = sender.balance.checked_sub(amount)?;
    receiver.balance = receiver.balance.checked_add(amount)?;
    store.put_account(&sender)?;
    store.put_account(&receiver)?;
    Ok(Outcome::default())
}

/// Checks a model id: 1 to 64 bytes of lowercase letters, digits, `.`, `_` and `-`.
pub fn validate_model_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_MODEL_ID_BYTES
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "invalid model id {id:?}: 1 to {MAX_MODEL_ID_BYTES} characters of a-z, 0-9, '.', '_' and '-'"
        )))
    }
}

fn register_node(
    store: &mut impl StateStore,
    owner: Address,
    name: &str,
    endpoint: &str,
    models: &[OfferedModel],
    now: Timestamp,
) -> Result<Outcome> {
    if name.trim().is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "node name must be 1 to {MAX_NAME_BYTES} printable bytes"
        )));
    }
    crate::endpoint::Endpoint::parse(endpoint)?;
    if models.is_empty() || models.len() > MAX_MODELS_PER_NODE {
        return Err(Error::InvalidInput(format!(
            "a node offers 1 to {MAX_MODELS_PER_NODE} models"
        )));
    }
    for (i, m) in models.iter().enumerate() {
        validate_model_id(&m.model_id)?;
        if models[..i].iter().any(|o| o.model_id == m.model_id) {
            return Err(Error::InvalidInput(format!(
                "model {} is offered twice",
                m.model_id
            )));
        }
    }
    let existing = store.node(owner)?;
    let node = Node {
        owner,
        name: name.to_owned(),
        endpoint: endpoint.to_owned(),
        models: models.to_vec(),
        active: true,
        stats: existing
            .as_ref()
            .map(|n| n.stats.clone())
            .unwrap_or_else(NodeStats::default),
        registered_at: existing.map_or(now, |n| n.registered_at),
    };
    store.put_node(&node)?;
    Ok(Outcome::default())
}

/// A submission's fields, as [`Action::Submit`] carries them.
struct Submission<'a> {
    node_addr: Address,
    model_id: &'a str,
    prompt: &'a str,
    params: &'a str,
    max_price: Amount,
    input: Option<&'a InputRef>,
    max_units: u64,
}

fn submit(
    store: &mut impl StateStore,
    config: &LedgerConfig,
    requester: Address,
    sub: Submission<'_>,
    now: Timestamp,
) -> Result<Outcome> {
    let Submission {
        node_addr,
        model_id,
        prompt,
        params,
        max_price,
        input,
        max_units,
    } = sub;
    check_prompt_size(prompt)?;
    check_params_size(params)?;
    match serde_json::from_str::<serde_json::Value>(params) {
        Ok(serde_json::Value::Object(_)) => {}
        _ => return Err(Error::InvalidInput("params must be a JSON object".into())),
    }
    if let Some(input) = input {
        check_input(input)?;
    }
    let node = load_node(store, node_addr)?;
    if !node.active {
        return Err(Error::NodeInactive(node_addr));
    }
    let offer = node.offer(model_id).ok_or_else(|| Error::ModelNotOffered {
        node: node_addr,
        model: model_id.to_owned(),
    })?;
    let (price, unit_price) = escrow_for(offer, max_units)?;
    if price > max_price {
        return Err(Error::PriceAboveMax { price, max_price });
    }
    let mut acct = load_account(store, requester)?;
    if acct.balance < price {
        return Err(Error::InsufficientFunds {
            needed: price,
            available: acct.balance,
        });
    }
    let mut g = store.globals()?;
    acct.balance = acct.balance.checked_sub(price)?;
    g.escrowed = g.escrowed.checked_add(price)?;
    g.task_count += 1;
    let task = Task {
        id: g.task_count,
        requester,
        node: node_addr,
        model_id: model_id.to_owned(),
        weights_sha256: offer.weights_sha256,
        prompt: prompt.to_owned(),
        params: params.to_owned(),
        price,
        input: input.cloned(),
        unit_price,
        max_units,
        units: None,
        refunded: Amount::ZERO,
        declined_reason: None,
        status: TaskStatus::Open,
        submitted_at: now,
        claim_deadline: now.saturating_add(config.claim_window_s),
        claimed_at: None,
        fulfil_deadline: None,
        fulfilled_at: None,
        result: None,
        nft: None,
        bounty_pool: Amount::ZERO,
        bounty_share: Amount::ZERO,
        bounty_paid: 0,
    };
    store.put_account(&acct)?;
    store.put_globals(&g)?;
    store.put_task(&task)?;
    Ok(Outcome {
        task: Some(task.id),
        ..Outcome::default()
    })
}

fn refund(store: &mut impl StateStore, task: &mut Task, status: TaskStatus) -> Result<Amount> {
    let mut g = store.globals()?;
    g.escrowed = g.escrowed.checked_sub(task.price)?;
    credit(store, task.requester, task.price)?;
    store.put_globals(&g)?;
    task.status = status;
    task.refunded = task.price;
    store.put_task(task)?;
    Ok(task.price)
}

fn cancel(store: &mut impl StateStore, signer: Address, id: TaskId) -> Result<Outcome> {
    let mut task = load_task(store, id)?;
    if task.requester != signer {
        return Err(Error::Unauthorized(format!(
            "only the requester can cancel task {id}"
        )));
    }
    if task.status != TaskStatus::Open {
        return Err(Error::InvalidState {
            task: id,
            status: task.status,
            action: "cancel",
        });
    }
    let refunded = refund(store, &mut task, TaskStatus::Cancelled)?;
    Ok(Outcome {
        task: Some(id),
        credited: Some(refunded),
        ..Outcome::default()
    })
}

fn claim(
    store: &mut impl StateStore,
    config: &LedgerConfig,
    signer: Address,
    id: TaskId,
    now: Timestamp,
) -> Result<Outcome> {
    let mut task = load_node_task(store, signer, id, TaskStatus::Open, "claim")?;
    if now > task.claim_deadline {
        return Err(Error::DeadlinePassed(format!(
            "task {id} had to be claimed by {}",
            task.claim_deadline
        )));
    }
    task.status = TaskStatus::Claimed;
    task.claimed_at = Some(now);
    task.fulfil_deadline = Some(now.saturating_add(config.fulfil_window_s));
    store.put_task(&task)?;
    Ok(Outcome {
        task: Some(id),
        ..Outcome::default()
    })
}

fn fulfil(
    store: &mut impl StateStore,
    signer: Address,
    id: TaskId,
    result: &OutputRef,
    units: Option<u64>,
    now: Timestamp,
) -> Result<Outcome> {
    let mut task = load_node_task(store, signer, id, TaskStatus::Claimed, "fulfil")?;
    let deadline = task.fulfil_deadline.unwrap_or(0);
    if now > deadline {
        return Err(Error::DeadlinePassed(format!(
            "task {id} had to be fulfilled by {deadline}"
        )));
    }
    if result.uri.is_empty() || result.uri.len() > MAX_URI_BYTES {
        return Err(Error::InvalidInput(format!(
            "output uri must be 1 to {MAX_URI_BYTES} bytes"
        )));
    }
    if result.mime.is_empty() || result.mime.len() > MAX_MIME_BYTES || !result.mime.contains('/') {
        return Err(Error::InvalidInput(
            "output mime must be a type/subtype".into(),
        ));
    }
    // What the output costs: the escrow, or for a metered task the units it holds.
    let cost = match (task.unit_price, units) {
        (None, None) => task.price,
        (None, Some(_)) => {
            return Err(Error::InvalidInput(format!(
                "task {id} is priced per task: a fulfilment states no units"
            )));
        }
        (Some(_), None) => {
            return Err(Error::InvalidInput(format!(
                "task {id} is metered: the fulfilment must state its units"
            )));
        }
        (Some(unit_price), Some(units)) => {
            if units > task.max_units {
                return Err(Error::InvalidInput(format!(
                    "task {id} allows at most {} units, the fulfilment states {units}",
                    task.max_units
                )));
            }
            metered_cost(unit_price, units)?
        }
    };
    let refunded = task.price.checked_sub(cost)?;
    let mut node = load_node(store, task.node)?;
    let mut g = store.globals()?;
    let to_node = cost.mul_div(NODE_SHARE_PER_MILLE, 1000);
    let to_treasury = cost.mul_div(TREASURY_SHARE_PER_MILLE, 1000);
    // The bounty takes the rounding remainder, so the three parts always sum to the cost.
    let bounty = cost.checked_sub(to_node)?.checked_sub(to_treasury)?;
    g.escrowed = g.escrowed.checked_sub(task.price)?;
    g.treasury = g.treasury.checked_add(to_treasury)?;
    g.bounty_pools = g.bounty_pools.checked_add(bounty)?;
    g.nft_count += 1;
    credit(store, task.node, to_node)?;
    if refunded != Amount::ZERO {
        credit(store, task.requester, refunded)?;
    }
    task.units = units;
    task.refunded = refunded;
    node.stats.fulfilled += 1;
    task.status = TaskStatus::Fulfilled;
    task.fulfilled_at = Some(now);
    task.result = Some(result.clone());
    task.nft = Some(g.nft_count);
    task.bounty_pool = bounty;
    task.bounty_share = bounty.mul_div(1, u64::from(BOUNTY_RATERS));
    let nft = OutputNft {
        id: g.nft_count,
        owner: task.requester,
        task: id,
        prompt: task.prompt.clone(),
        model_id: task.model_id.clone(),
        weights_sha256: task.weights_sha256,
        params: task.params.clone(),
        input: task.input.clone(),
        units,
        output: result.clone(),
        node: task.node,
        requester: task.requester,
        minted_at: now,
    };
    store.put_globals(&g)?;
    store.put_node(&node)?;
    store.put_task(&task)?;
    store.put_nft(&nft)?;
    Ok(Outcome {
        task: Some(id),
        nft: Some(nft.id),
        credited: Some(to_node),
        ..Outcome::default()
    })
}

fn expire(store: &mut impl StateStore, id: TaskId, now: Timestamp) -> Result<Outcome> {
    let mut task = load_task(store, id)?;
    match task.status {
        // A node that never claims a task addressed to it misses it as surely as one
        // that claims and never delivers: a live node claims, or declines, at once.
        TaskStatus::Open if now > task.claim_deadline => {
            let mut node = load_node(store, task.node)?;
            node.stats.missed += 1;
            store.put_node(&node)?;
        }
        TaskStatus::Claimed if now > task.fulfil_deadline.unwrap_or(0) => {
            let mut node = load_node(store, task.node)?;
            node.stats.missed += 1;
            store.put_node(&node)?;
        }
        TaskStatus::Open | TaskStatus::Claimed => {
            let deadline = if task.status == TaskStatus::Open {
                task.claim_deadline
            } else {
                task.fulfil_deadline.unwrap_or(0)
            };
            return Err(Error::DeadlineNotPassed(format!(
                "task {id} is {} until {deadline}",
                task.status
            )));
        }
        status => {
            return Err(Error::InvalidState {
                task: id,
                status,
                action: "expire",
            });
        }
    }
    refund(store, &mut task, TaskStatus::Expired)?;
    Ok(Outcome {
        task: Some(id),
        ..Outcome::default()
    })
}

/// Checks a decline's reason: 1 to [`MAX_DECLINE_REASON_BYTES`] bytes, not all spaces,
/// with no ASCII control characters, so every listing can show it as it is (byte
/// rules, which the Cadence contract applies alike).
pub fn check_decline_reason(reason: &str) -> Result<()> {
    let bytes = reason.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_DECLINE_REASON_BYTES
        || bytes.iter().all(|&b| b == b' ')
        || bytes.iter().any(|&b| b < 0x20 || b == 0x7f)
    {
        return Err(Error::InvalidInput(format!(
            "a decline's reason must be 1 to {MAX_DECLINE_REASON_BYTES} bytes, not all \
             spaces, with no control characters"
        )));
    }
    Ok(())
}

/// Any text made a valid decline reason: control characters become spaces, the text is
/// cut at a character boundary to [`MAX_DECLINE_REASON_BYTES`], and an empty result
/// says only that the node declined.
pub fn decline_reason(text: &str) -> String {
    let mut out = String::new();
    for c in text
        .chars()
        .map(|c| if c.is_ascii_control() { ' ' } else { c })
    {
        if out.len() + c.len_utf8() > MAX_DECLINE_REASON_BYTES {
            break;
        }
        out.push(c);
    }
    let out = out.trim().to_owned();
    if out.is_empty() {
        "the node declined the task".to_owned()
    } else {
        out
    }
}

fn decline(
    store: &mut impl StateStore,
    signer: Address,
    id: TaskId,
    reason: &str,
    now: Timestamp,
) -> Result<Outcome> {
    check_decline_reason(reason)?;
    let mut task = load_task(store, id)?;
    if task.node != signer {
        return Err(Error::WrongNode {
            task: id,
            node: task.node,
        });
    }
    // Before its deadline only: past it the task is the node's miss, which `expire`
    // records; a node cannot turn a miss into a decline.
    let deadline = match task.status {
        TaskStatus::Open => task.claim_deadline,
        TaskStatus::Claimed => task.fulfil_deadline.unwrap_or(0),
        status => {
            return Err(Error::InvalidState {
                task: id,
                status,
                action: "decline",
            });
        }
    };
    if now > deadline {
        return Err(Error::DeadlinePassed(format!(
            "task {id} could be declined until {deadline}; expire it instead"
        )));
    }
    let mut node = load_node(store, signer)?;
    node.stats.declined += 1;
    store.put_node(&node)?;
    task.declined_reason = Some(reason.to_owned());
    refund(store, &mut task, TaskStatus::Declined)?;
    Ok(Outcome {
        task: Some(id),
        ..Outcome::default()
    })
}

fn rate(
    store: &mut impl StateStore,
    config: &LedgerConfig,
    rater: Address,
    id: TaskId,
    stars: u8,
    now: Timestamp,
) -> Result<Outcome> {
    if !(1..=5).contains(&stars) {
        return Err(Error::InvalidInput(format!(
            "stars must be 1 to 5, got {stars}"
        )));
    }
    let mut task = load_task(store, id)?;
    if task.status != TaskStatus::Fulfilled {
        return Err(Error::InvalidState {
            task: id,
            status: task.status,
            action: "rate",
        });
    }
    if rater == task.node {
        return Err(Error::Unauthorized(
            "a node's owner cannot rate the node's own outputs".into(),
        ));
    }
    if store.rating(id, rater)?.is_some() {
        return Err(Error::AlreadyRated { task: id, rater });
    }
    load_account(store, rater)?;
    let mut node = load_node(store, task.node)?;
    let by_requester = rater == task.requester;
    if by_requester {
        // What the payer paid weighs its stars (the escrow less what came back).
        let paid = task.price.checked_sub(task.refunded)?.0;
        node.stats.ratings_count += 1;
        node.stats.ratings_sum += u64::from(stars);
        node.stats.rated_paid = node.stats.rated_paid.saturating_add(paid);
        node.stats.rated_paid_stars = node
            .stats
            .rated_paid_stars
            .saturating_add(paid.saturating_mul(u64::from(stars)));
    } else {
        node.stats.community_count += 1;
        node.stats.community_sum += u64::from(stars);
    }
    let in_window = now
        <= task
            .fulfilled_at
            .unwrap_or(0)
            .saturating_add(config.bounty_window_s);
    let mut bounty = Amount::ZERO;
    if in_window && task.bounty_paid < BOUNTY_RATERS && task.bounty_pool > Amount::ZERO {
        bounty = next_bounty(&task);
        let mut g = store.globals()?;
        g.bounty_pools = g.bounty_pools.checked_sub(bounty)?;
        task.bounty_pool = task.bounty_pool.checked_sub(bounty)?;
        task.bounty_paid += 1;
        store.put_globals(&g)?;
        credit(store, rater, bounty)?;
    }
    store.put_node(&node)?;
    store.put_task(&task)?;
    store.put_rating(&Rating {
        task: id,
        rater,
        stars,
        by_requester,
        bounty,
        at: now,
    })?;
    Ok(Outcome {
        task: Some(id),
        credited: Some(bounty),
        ..Outcome::default()
    })
}

fn sweep(
    store: &mut impl StateStore,
    config: &LedgerConfig,
    id: TaskId,
    now: Timestamp,
) -> Result<Outcome> {
    let mut task = load_task(store, id)?;
    if task.status != TaskStatus::Fulfilled {
        return Err(Error::InvalidState {
            task: id,
            status: task.status,
            action: "sweep",
        });
    }
    let ends = task
        .fulfilled_at
        .unwrap_or(0)
        .saturating_add(config.bounty_window_s);
    if now <= ends {
        return Err(Error::DeadlineNotPassed(format!(
            "task {id}'s rating bounty is open until {ends}"
        )));
    }
    if task.bounty_pool == Amount::ZERO {
        return Err(Error::InvalidInput(format!(
            "task {id} has no bounty left to sweep"
        )));
    }
    let mut g = store.globals()?;
    g.bounty_pools = g.bounty_pools.checked_sub(task.bounty_pool)?;
    g.treasury = g.treasury.checked_add(task.bounty_pool)?;
    task.bounty_pool = Amount::ZERO;
    store.put_globals(&g)?;
    store.put_task(&task)?;
    Ok(Outcome {
        task: Some(id),
        ..Outcome::default()
    })
}
