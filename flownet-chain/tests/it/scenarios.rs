//! The scenario suite (`tests/scenarios/*.json`, described in its README):
//! every rule and rejection of the rulebook and the seed's three holes, as
//! plain data. It runs on the embedded ledger always; with the `flow` feature
//! and a Flow emulator (`FLOW_EMULATOR=/path/to/binary`, or `flow` on PATH)
//! it runs again on a fresh FlowNet deployment per scenario and requires the
//! two runs to agree step for step.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use async_trait::async_trait;
use flownet_chain::{EmbeddedLedger, ManualClock};
use flownet_core::{
    Action, Address, Amount, Digest32, Ledger, LedgerConfig, OfferedModel, OutputRef, SigningKey,
    TaskId, Wallet,
};
use serde_json::Value as Json;

/// A parsed scenario file.
pub struct Scenario {
    pub file: String,
    pub name: String,
    pub config: LedgerConfig,
    pub actors: Vec<String>,
    pub steps: Vec<Json>,
}

/// What one step did, in a form both ledgers must agree on: addresses as
/// actor names, timestamps masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Ok(String),
    Rejected {
        kind: String,
        message: String,
    },
    Checked,
    Waited,
    /// An attack step on a ledger without a programmable surface.
    NotApplicable,
    /// An attack the ledger refused (the first line of why).
    Refused(String),
}

pub fn load_scenarios() -> Vec<Scenario> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "scenario files missing in {}",
        dir.display()
    );
    files
        .into_iter()
        .map(|path| {
            let json: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let c = &json["config"];
            let secs = |k: &str, d: u64| c.get(k).and_then(Json::as_u64).unwrap_or(d);
            Scenario {
                file: path.file_name().unwrap().to_string_lossy().into_owned(),
                name: json["name"].as_str().unwrap().to_owned(),
                config: LedgerConfig {
                    claim_window_s: secs("claim_window_s", 5),
                    fulfil_window_s: secs("fulfil_window_s", 5),
                    bounty_window_s: secs("bounty_window_s", 8),
                    faucet_amount: c
                        .get("faucet")
                        .and_then(Json::as_str)
                        .unwrap_or("1000")
                        .parse()
                        .unwrap(),
                },
                actors: json["actors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_owned())
                    .collect(),
                steps: json["steps"].as_array().unwrap().clone(),
            }
        })
        .collect()
}

/// One ledger under test, with a funded-nothing account per actor.
#[async_trait]
pub trait Harness: Send + Sync {
    fn label(&self) -> &'static str;
    fn ledger(&self) -> Arc<dyn Ledger>;
    fn wallet(&self, actor: &str) -> &Wallet<dyn Ledger>;
    /// The account that deployed the contracts, where there is one.
    fn admin(&self) -> Option<Address>;
    /// Lets `seconds` of ledger time pass.
    async fn wait(&self, seconds: u64);
    /// Runs a hostile transaction signed by `actor`: `None` where the ledger
    /// has no programmable surface, else whether it was refused and why.
    async fn attack(
        &self,
        actor: &str,
        file: &str,
        args: Vec<AttackArg>,
    ) -> Option<Result<(), String>>;
}

/// An attack transaction's argument.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "flow"), allow(dead_code))]
pub enum AttackArg {
    Address(Address),
    Task(TaskId),
}

// --- the embedded ledger ---------------------------------------------------------------

pub struct EmbeddedHarness {
    _dir: tempfile::TempDir,
    ledger: Arc<EmbeddedLedger>,
    clock: Arc<ManualClock>,
    wallets: BTreeMap<String, Wallet<dyn Ledger>>,
}

impl EmbeddedHarness {
    pub async fn new(scenario: &Scenario) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        EmbeddedLedger::create(&path, scenario.config.clone()).unwrap();
        let clock = Arc::new(ManualClock::new(1_700_000_000));
        let ledger = Arc::new(EmbeddedLedger::open_with_clock(&path, clock.clone()).unwrap());
        let mut wallets = BTreeMap::new();
        for actor in &scenario.actors {
            let dyn_ledger: Arc<dyn Ledger> = ledger.clone();
            let wallet = Wallet::new(dyn_ledger, SigningKey::generate());
            wallet.create_account().await.unwrap();
            wallets.insert(actor.clone(), wallet);
        }
        Self {
            _dir: dir,
            ledger,
            clock,
            wallets,
        }
    }
}

#[async_trait]
impl Harness for EmbeddedHarness {
    fn label(&self) -> &'static str {
        "embedded"
    }
    fn ledger(&self) -> Arc<dyn Ledger> {
        self.ledger.clone()
    }
    fn wallet(&self, actor: &str) -> &Wallet<dyn Ledger> {
        &self.wallets[actor]
    }
    fn admin(&self) -> Option<Address> {
        None
    }
    async fn wait(&self, seconds: u64) {
        self.clock.advance(seconds);
    }
    async fn attack(&self, _: &str, _: &str, _: Vec<AttackArg>) -> Option<Result<(), String>> {
        None
    }
}

// --- the runner ----------------------------------------------------------------------------

struct Run<'a> {
    scenario: &'a Scenario,
    harness: &'a dyn Harness,
    labels: BTreeMap<String, TaskId>,
}

fn amount(v: &Json) -> Amount {
    v.as_str()
        .unwrap_or_else(|| panic!("amount {v} must be a string"))
        .parse()
        .unwrap()
}

fn output() -> OutputRef {
    let sha256 = Digest32([0xab; 32]);
    OutputRef {
        uri: format!("http://n/blobs/{sha256}"),
        sha256,
        mime: "image/png".into(),
        size: 10,
    }
}

/// A params JSON object of exactly `n` bytes.
fn params_of_len(n: usize) -> String {
    let mut s = String::from("{\"k\":\"");
    while s.len() + 2 < n {
        s.push('a');
    }
    s.push_str("\"}");
    s
}

impl Run<'_> {
    fn ctx(&self, i: usize) -> String {
        format!(
            "[{}] {} step {i}: {}",
            self.harness.label(),
            self.scenario.file,
            self.scenario.steps[i]
        )
    }

    fn address(&self, name: &str) -> Address {
        if name == "$admin" {
            // Only attack steps name the admin, and only ledgers with an admin
            // run them.
            return self.harness.admin().unwrap_or_default();
        }
        if self.scenario.actors.iter().any(|a| a == name) {
            self.harness.wallet(name).address()
        } else {
            name.parse()
                .unwrap_or_else(|_| panic!("{name} is neither an actor nor an address"))
        }
    }

    fn task(&self, v: &Json) -> TaskId {
        match v {
            Json::Number(n) => n.as_u64().unwrap(),
            Json::String(label) => *self
                .labels
                .get(label)
                .unwrap_or_else(|| panic!("unknown task label {label}")),
            other => panic!("bad task reference {other}"),
        }
    }

    /// `message` with actor addresses as `{name}` and timestamps as `<time>`.
    fn normalize(&self, message: &str) -> String {
        let mut m = message.to_owned();
        for actor in &self.scenario.actors {
            m = m.replace(
                &self.harness.wallet(actor).address().to_string(),
                &format!("{{{actor}}}"),
            );
        }
        if let Some(admin) = self.harness.admin() {
            m = m.replace(&admin.to_string(), "{admin}");
        }
        // A timestamp is a standalone run of 10 or more digits (not part of a
        // hex address).
        let chars: Vec<char> = m.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        while i < chars.len() {
            let standalone_start = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
            if chars[i].is_ascii_digit() && standalone_start {
                let mut j = i;
                while j < chars.len() && chars[j].is_ascii_digit() {
                    j += 1;
                }
                let standalone_end = j == chars.len() || !chars[j].is_ascii_alphanumeric();
                if j - i >= 10 && standalone_end {
                    out.push_str("<time>");
                    i = j;
                    continue;
                }
            }
            out.push(chars[i]);
            i += 1;
        }
        out
    }

    fn action(&self, step: &Json) -> Action {
        let s = |k: &str| {
            step[k]
                .as_str()
                .unwrap_or_else(|| panic!("{k} missing in {step}"))
                .to_owned()
        };
        match step["do"].as_str().unwrap() {
            "faucet" => Action::Faucet,
            "transfer" => Action::Transfer {
                to: self.address(&s("to")),
                amount: amount(&step["amount"]),
            },
            "register_node" => {
                let models = match step.get("models_count").and_then(Json::as_u64) {
                    Some(n) => (0..n)
                        .map(|i| OfferedModel {
                            model_id: format!("m{i}"),
                            weights_sha256: Digest32([1; 32]),
                            price: Amount::tokens(1),
                            unit: flownet_core::PriceUnit::Task,
                        })
                        .collect(),
                    None => step["models"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|m| OfferedModel {
                            model_id: m["model_id"].as_str().unwrap().to_owned(),
                            weights_sha256: Digest32([7; 32]),
                            price: amount(&m["price"]),
                            unit: match m.get("unit").and_then(Json::as_str) {
                                None | Some("task") => flownet_core::PriceUnit::Task,
                                Some("thousand_tokens") => flownet_core::PriceUnit::ThousandTokens,
                                Some(other) => panic!("unknown unit {other}"),
                            },
                        })
                        .collect(),
                };
                Action::RegisterNode {
                    name: s("name"),
                    endpoint: s("endpoint"),
                    models,
                }
            }
            "set_node_active" => Action::SetNodeActive {
                active: step["active"].as_bool().unwrap(),
            },
            "submit" => Action::Submit {
                node: self.address(&s("node")),
                model_id: s("model_id"),
                prompt: match step.get("prompt_len").and_then(Json::as_u64) {
                    Some(n) => "a".repeat(n as usize),
                    None => s("prompt"),
                },
                params: match step.get("params_len").and_then(Json::as_u64) {
                    Some(n) => params_of_len(n as usize),
                    None => s("params"),
                },
                max_price: amount(&step["max_price"]),
                input: step.get("input").map(|i| flownet_core::InputRef {
                    sha256: Digest32::from_hex(i["sha256"].as_str().unwrap()).unwrap(),
                    size: i["size"].as_u64().unwrap(),
                    uri: i["uri"].as_str().unwrap().to_owned(),
                }),
                max_units: step.get("max_units").and_then(Json::as_u64).unwrap_or(0),
            },
            "cancel" => Action::Cancel {
                task: self.task(&step["task"]),
            },
            "claim" => Action::Claim {
                task: self.task(&step["task"]),
            },
            "fulfil" => {
                let mut result = output();
                if let Some(uri) = step.get("uri").and_then(Json::as_str) {
                    result.uri = uri.to_owned();
                }
                if let Some(mime) = step.get("mime").and_then(Json::as_str) {
                    result.mime = mime.to_owned();
                }
                Action::Fulfil {
                    task: self.task(&step["task"]),
                    result,
                    units: step.get("units").and_then(Json::as_u64),
                }
            }
            "expire" => Action::Expire {
                task: self.task(&step["task"]),
            },
            "rate" => Action::Rate {
                task: self.task(&step["task"]),
                stars: step["stars"].as_u64().unwrap() as u8,
            },
            "sweep" => Action::Sweep {
                task: self.task(&step["task"]),
            },
            "decline" => Action::Decline {
                task: self.task(&step["task"]),
                reason: s("reason"),
            },
            other => panic!("unknown action {other}"),
        }
    }

    async fn act(&mut self, i: usize) -> Record {
        let step = self.scenario.steps[i].clone();
        let actor = step["actor"].as_str().unwrap();
        let action = self.action(&step);
        let result = self.harness.wallet(actor).send(action).await;
        let expect = step.get("expect").cloned().unwrap_or(Json::Null);
        match (result, expect.get("error").and_then(Json::as_str)) {
            (Ok(receipt), None) => {
                let o = &receipt.outcome;
                if let Some(label) = step.get("as").and_then(Json::as_str) {
                    let id = o
                        .task
                        .unwrap_or_else(|| panic!("{}: no task id", self.ctx(i)));
                    self.labels.insert(label.to_owned(), id);
                }
                if let Some(c) = expect.get("credited") {
                    assert_eq!(o.credited, Some(amount(c)), "{}", self.ctx(i));
                }
                if let Some(n) = expect.get("nft") {
                    assert_eq!(o.nft, n.as_u64(), "{}", self.ctx(i));
                }
                Record::Ok(format!(
                    "task={:?} nft={:?} credited={:?}",
                    o.task,
                    o.nft,
                    o.credited.map(|a| a.to_string())
                ))
            }
            (Ok(receipt), Some(kind)) => {
                panic!(
                    "{}: accepted ({:?}), expected {kind}",
                    self.ctx(i),
                    receipt.outcome
                )
            }
            (Err(e), want) => {
                let kind = serde_json::to_value(e.kind())
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned();
                let message = self.normalize(&e.to_string());
                let Some(want) = want else {
                    panic!("{}: rejected: {e}", self.ctx(i));
                };
                assert_eq!(kind, want, "{}: {e}", self.ctx(i));
                if let Some(m) = expect.get("message").and_then(Json::as_str) {
                    assert_eq!(message, m, "{}", self.ctx(i));
                }
                Record::Rejected { kind, message }
            }
        }
    }

    async fn snapshot(&self) -> (BTreeMap<String, Amount>, flownet_core::Globals) {
        let ledger = self.harness.ledger();
        let mut balances = BTreeMap::new();
        for actor in &self.scenario.actors {
            let a = self.harness.wallet(actor).address();
            let acct = ledger.account(a).await.unwrap().unwrap();
            balances.insert(actor.clone(), acct.balance);
        }
        (balances, ledger.info().await.unwrap().globals)
    }

    async fn check(&self, i: usize) -> Record {
        let ctx = self.ctx(i);
        let check = &self.scenario.steps[i]["check"];
        let ledger = self.harness.ledger();
        let (balances, g) = self.snapshot().await;
        for (actor, want) in check
            .get("balances")
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
        {
            assert_eq!(balances[actor], amount(want), "{ctx}: balance of {actor}");
        }
        for (actor, want) in check
            .get("faucet_used")
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
        {
            let a = self.harness.wallet(actor).address();
            let acct = ledger.account(a).await.unwrap().unwrap();
            assert_eq!(
                Some(acct.faucet_used),
                want.as_bool(),
                "{ctx}: faucet_used of {actor}"
            );
        }
        for (k, want) in check
            .get("globals")
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
        {
            let got = match k.as_str() {
                "total_minted" => g.total_minted.to_string(),
                "escrowed" => g.escrowed.to_string(),
                "bounty_pools" => g.bounty_pools.to_string(),
                "treasury" => g.treasury.to_string(),
                "task_count" => g.task_count.to_string(),
                "nft_count" => g.nft_count.to_string(),
                other => panic!("unknown global {other}"),
            };
            let want = want
                .as_str()
                .map_or_else(|| want.to_string(), str::to_owned);
            assert_eq!(got, want, "{ctx}: global {k}");
        }
        for (label, fields) in check
            .get("tasks")
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
        {
            let id = self.task(&Json::String(label.clone()));
            let t = ledger.task(id).await.unwrap().unwrap();
            for (k, want) in fields.as_object().unwrap() {
                let got = match k.as_str() {
                    "status" => t.status.to_string(),
                    "price" => t.price.to_string(),
                    "bounty_pool" => t.bounty_pool.to_string(),
                    "bounty_share" => t.bounty_share.to_string(),
                    "bounty_paid" => t.bounty_paid.to_string(),
                    "nft" => t.nft.map_or("null".into(), |n| n.to_string()),
                    "max_units" => t.max_units.to_string(),
                    "units" => t.units.map_or("null".into(), |n| n.to_string()),
                    "refunded" => t.refunded.to_string(),
                    "declined_reason" => t.declined_reason.clone().unwrap_or("null".into()),
                    "unit_price" => t.unit_price.map_or("null".into(), |p| p.to_string()),
                    "input_size" => t
                        .input
                        .as_ref()
                        .map_or("null".into(), |i| i.size.to_string()),
                    other => panic!("unknown task field {other}"),
                };
                let want = want
                    .as_str()
                    .map_or_else(|| want.to_string(), str::to_owned);
                assert_eq!(got, want, "{ctx}: task {label}.{k}");
            }
        }
        for (actor, fields) in check
            .get("nodes")
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
        {
            let a = self.harness.wallet(actor).address();
            let n = ledger.node(a).await.unwrap().unwrap();
            for (k, want) in fields.as_object().unwrap() {
                let got = match k.as_str() {
                    "active" => n.active.to_string(),
                    "models" => n.models.len().to_string(),
                    "name" => n.name.clone(),
                    "endpoint" => n.endpoint.clone(),
                    "fulfilled" => n.stats.fulfilled.to_string(),
                    "missed" => n.stats.missed.to_string(),
                    "declined" => n.stats.declined.to_string(),
                    "rated_paid" => flownet_core::Amount(n.stats.rated_paid).to_string(),
                    "score" => format!("{:.4}", n.stats.score()),
                    "ratings_count" => n.stats.ratings_count.to_string(),
                    "ratings_sum" => n.stats.ratings_sum.to_string(),
                    "community_count" => n.stats.community_count.to_string(),
                    "community_sum" => n.stats.community_sum.to_string(),
                    other => panic!("unknown node field {other}"),
                };
                let want = want
                    .as_str()
                    .map_or_else(|| want.to_string(), str::to_owned);
                assert_eq!(got, want, "{ctx}: node {actor}.{k}");
            }
        }
        if let Some(want) = check.get("ranking").and_then(Json::as_array) {
            // The listing's order, best first, of the named actors' nodes.
            let named: Vec<(String, flownet_core::Address)> = want
                .iter()
                .map(|a| {
                    let a = a.as_str().unwrap().to_owned();
                    let addr = self.harness.wallet(&a).address();
                    (a, addr)
                })
                .collect();
            let got: Vec<String> = ledger
                .nodes()
                .await
                .unwrap()
                .iter()
                .filter_map(|n| named.iter().find(|(_, a)| *a == n.owner))
                .map(|(name, _)| name.clone())
                .collect();
            let want: Vec<String> = named.into_iter().map(|(n, _)| n).collect();
            assert_eq!(got, want, "{ctx}: ranking");
        }
        for (actor, want) in check
            .get("nfts")
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
        {
            let a = self.harness.wallet(actor).address();
            let nfts = ledger.nfts(a).await.unwrap();
            assert_eq!(
                Some(nfts.len() as u64),
                want.as_u64(),
                "{ctx}: nfts of {actor}"
            );
            for nft in nfts {
                assert_eq!(nft.requester, a, "{ctx}: an NFT's requester is its owner");
                let task = ledger.task(nft.task).await.unwrap().unwrap();
                assert_eq!(task.nft, Some(nft.id), "{ctx}: NFT {} and its task", nft.id);
                assert_eq!(Some(nft.output.clone()), task.result, "{ctx}: NFT output");
                assert_eq!(nft.prompt, task.prompt);
                assert_eq!(nft.weights_sha256, task.weights_sha256);
            }
        }
        for (label, want) in check
            .get("ratings")
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
        {
            let id = self.task(&Json::String(label.clone()));
            let ratings = ledger.ratings(id).await.unwrap();
            assert_eq!(
                Some(ratings.len() as u64),
                want.as_u64(),
                "{ctx}: ratings of {label}"
            );
        }
        // The supply invariant: every token minted is somewhere.
        let held = balances
            .values()
            .fold(Amount::ZERO, |s, b| s.checked_add(*b).unwrap());
        let accounted = held
            .checked_add(g.escrowed)
            .and_then(|s| s.checked_add(g.bounty_pools))
            .and_then(|s| s.checked_add(g.treasury))
            .unwrap();
        assert_eq!(accounted, g.total_minted, "{ctx}: supply invariant");
        Record::Checked
    }

    async fn attack(&self, i: usize) -> Record {
        let step = &self.scenario.steps[i];
        let actor = step["actor"].as_str().unwrap();
        let file = step["attack"].as_str().unwrap();
        let args = step
            .get("args")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .map(|a| {
                let a = a.as_str().unwrap();
                match self.labels.get(a) {
                    Some(id) => AttackArg::Task(*id),
                    None => AttackArg::Address(self.address(a)),
                }
            })
            .collect();
        let before = self.snapshot().await;
        let Some(result) = self.harness.attack(actor, file, args).await else {
            return Record::NotApplicable;
        };
        let why = match result {
            Ok(()) => panic!("{}: the attack succeeded", self.ctx(i)),
            Err(why) => why,
        };
        let after = self.snapshot().await;
        assert_eq!(
            before,
            after,
            "{}: the refused attack changed state",
            self.ctx(i)
        );
        Record::Refused(why)
    }

    async fn run(mut self) -> Vec<Record> {
        let mut out = Vec::new();
        for i in 0..self.scenario.steps.len() {
            let step = &self.scenario.steps[i];
            let record = if let Some(secs) = step.get("wait").and_then(Json::as_u64) {
                self.harness.wait(secs).await;
                Record::Waited
            } else if step.get("check").is_some() {
                self.check(i).await
            } else if step.get("attack").is_some() {
                self.attack(i).await
            } else {
                self.act(i).await
            };
            out.push(record);
        }
        out
    }
}

/// Runs `scenario` on `harness`, asserting its expectations; returns the trace.
pub async fn run(scenario: &Scenario, harness: &dyn Harness) -> Vec<Record> {
    Run {
        scenario,
        harness,
        labels: BTreeMap::new(),
    }
    .run()
    .await
}

#[tokio::test]
async fn every_scenario_holds_on_the_embedded_ledger() {
    for scenario in load_scenarios() {
        let harness = EmbeddedHarness::new(&scenario).await;
        let trace = run(&scenario, &harness).await;
        assert_eq!(trace.len(), scenario.steps.len());
        eprintln!("embedded: {} ok ({})", scenario.file, scenario.name);
    }
}

#[cfg(feature = "flow")]
#[path = "scenarios_flow.rs"]
pub mod on_flow;
