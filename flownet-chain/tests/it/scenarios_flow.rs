//! The scenario suite on a live Flow emulator. Given `FLOW_EMULATOR` (a path
//! to the emulator binary, or to the Flow CLI) or `flow` on PATH, it starts
//! the emulator on 127.0.0.1 with free ports for gRPC, REST, admin and the
//! debugger (which otherwise listens on every interface), a known service
//! key and transaction fees on; then, for each scenario, makes a fresh admin
//! account, deploys FlowNet's contracts there with the Rust client, runs the
//! scenario through [`FlowLedger`] and requires the same trace as the
//! embedded ledger's. Without an emulator it prints `SKIPPED: no Flow
//! emulator` and passes.

use std::{
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use flownet_chain::flow::{
    AccessClient, FlowConfig, FlowKey, FlowLedger, FlowSigner, HashAlgorithm, Network,
    SignatureAlgorithm, Value,
};
use flownet_core::{Address, Ledger, SigningKey, Wallet};

use super::{AttackArg, EmbeddedHarness, Harness, Record, Scenario, load_scenarios, run};

/// The emulator's service account.
const SERVICE_ADDRESS: Address = Address([0xf8, 0xd6, 0xe0, 0x58, 0x6b, 0x0a, 0x20, 0xc7]);
/// A fixed service key, so the suite can sign as the service account.
const SERVICE_KEY_HEX: &str = "6e1a5c6fc6b8bd2f1b2e5b7c0f7a9d1e3c5b7a9f1e3d5c7b9a1f3e5d7c9b1a3f";

/// The emulator binary the environment names, if any.
pub fn emulator_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FLOW_EMULATOR").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("flow"))
        .find(|p| p.is_file())
}

/// A running emulator, stopped on drop.
pub struct Emulator {
    child: Child,
    pub access_api: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    pub async fn start(binary: &Path) -> Emulator {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("emulator.log");
        let [port, rest, admin, debugger] = crate::loopback::free_ports::<4>();
        let args: Vec<String> = [
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--rest-port",
            &rest.to_string(),
            "--admin-port",
            &admin.to_string(),
            // Unreachable anyway: the emulator runs in a namespace of its own.
            "--debugger-port",
            &debugger.to_string(),
            "--service-priv-key",
            SERVICE_KEY_HEX,
            "--service-sig-algo",
            "ECDSA_P256",
            "--service-hash-algo",
            "SHA3_256",
            "--transaction-fees",
            // Scenario steps wait for real seconds; keep references valid.
            "--transaction-expiry",
            "1000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut cmd = crate::loopback::emulator_command(binary, &args);
        cmd.current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("emulator.err")).unwrap());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let emulator = Emulator {
            child,
            access_api: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(client) = AccessClient::connect(&emulator.access_api).await
                && client.ping().await.is_ok()
                && client.latest_block(true).await.is_ok()
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the emulator did not answer on {} within 120 s; its log:\n{}",
                emulator.access_api,
                std::fs::read_to_string(&emulator.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // gRPC, REST and admin at least; every one of them on loopback.
        crate::loopback::assert_listens_only_on_loopback(
            emulator.child.id(),
            "the Flow emulator",
            3,
        );
        emulator
    }

    pub fn network(&self) -> Network {
        let mut n = Network::named("emulator").unwrap();
        n.access_api = self.access_api.clone();
        n
    }

    pub fn service(&self) -> FlowSigner {
        let key = FlowKey::from_bytes(
            SignatureAlgorithm::EcdsaP256,
            HashAlgorithm::Sha3_256,
            &hex(SERVICE_KEY_HEX),
        )
        .unwrap();
        FlowSigner::new(SERVICE_ADDRESS, 0, key)
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A fresh admin account on `emulator` with FlowNet deployed under `config`,
/// and a Flow client on it whose sponsor is the admin.
pub async fn deploy_fresh(
    emulator: &Emulator,
    config: &flownet_core::LedgerConfig,
) -> (Arc<FlowLedger>, Address) {
    let network = emulator.network();
    let admin_key = SigningKey::generate();
    let admin = FlowLedger::create_funded_account(
        &network,
        &emulator.service(),
        admin_key.public_key().as_bytes(),
        100 * 100_000_000,
    )
    .await
    .expect("creating the admin account");
    let admin_signer = FlowSigner::new(admin, 0, FlowKey::from_core(&admin_key));
    FlowLedger::deploy(&network, &admin_signer, config)
        .await
        .expect("deploying FlowNet");
    let mut flow_config = FlowConfig::new(network.with_flownet_at(admin));
    flow_config.sponsor = Some(admin_signer);
    let ledger = Arc::new(FlowLedger::connect(flow_config).await.unwrap());
    (ledger, admin)
}

pub struct FlowHarness {
    ledger: Arc<FlowLedger>,
    admin: Address,
    wallets: std::collections::BTreeMap<String, Wallet<dyn Ledger>>,
}

impl FlowHarness {
    /// A fresh admin account with FlowNet deployed under the scenario's
    /// configuration, and an account per actor created by the sponsor.
    pub async fn new(emulator: &Emulator, scenario: &Scenario) -> Self {
        let (ledger, admin) = deploy_fresh(emulator, &scenario.config).await;
        let mut wallets = std::collections::BTreeMap::new();
        for actor in &scenario.actors {
            let key = SigningKey::generate();
            let address = ledger.create_account(&key).await.unwrap();
            let dyn_ledger: Arc<dyn Ledger> = ledger.clone();
            wallets.insert(
                actor.clone(),
                Wallet::with_address(dyn_ledger, key, address),
            );
        }
        Self {
            ledger,
            admin,
            wallets,
        }
    }
}

#[async_trait]
impl Harness for FlowHarness {
    fn label(&self) -> &'static str {
        "flow-emulator"
    }
    fn ledger(&self) -> Arc<dyn Ledger> {
        self.ledger.clone()
    }
    fn wallet(&self, actor: &str) -> &Wallet<dyn Ledger> {
        &self.wallets[actor]
    }
    fn admin(&self) -> Option<Address> {
        Some(self.admin)
    }
    async fn wait(&self, seconds: u64) {
        // Later blocks must carry timestamps at least `seconds` later. The
        // emulator stamps a block when it opens it (right after the previous
        // one is sealed), so after sleeping, seal one empty transaction: the
        // next block opens, and is stamped, after the wait.
        tokio::time::sleep(Duration::from_millis(seconds * 1000 + 300)).await;
        self.ledger
            .run_transaction(
                "transaction { prepare(signer: &Account) {} }",
                &[],
                self.admin,
            )
            .await
            .expect("sealing a block after the wait");
    }
    async fn attack(
        &self,
        actor: &str,
        file: &str,
        args: Vec<AttackArg>,
    ) -> Option<Result<(), String>> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../cadence/tests/attacks")
            .join(file);
        let code =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let args: Vec<Value> = args
            .into_iter()
            .map(|a| match a {
                AttackArg::Address(a) => Value::Address(a),
                AttackArg::Task(t) => Value::uint64(t),
            })
            .collect();
        let signer = self.wallets[actor].address();
        Some(
            match self.ledger.run_transaction(&code, &args, signer).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    // A transport failure proves nothing: the chain must refuse it.
                    assert!(
                        !matches!(e, flownet_core::Error::Network(_)),
                        "{file}: the attack did not reach the chain: {e}"
                    );
                    // Keep Cadence's own reason: the checker's or the rule's message.
                    let text = e.to_string();
                    let reason = match text.split_once("Execution failed: error: ") {
                        Some((_, rest)) => {
                            rest.split(" --> ").next().unwrap_or(rest).trim().to_owned()
                        }
                        None => text,
                    };
                    eprintln!("flow: {file} refused: {reason}");
                    Err(reason.to_owned())
                }
            },
        )
    }
}

/// One emulator at a time: the tests share two cores.
pub static EMULATOR_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The emulator binary, or `None` after printing the loud skip notice.
pub fn emulator_or_skip(what: &str) -> Option<PathBuf> {
    let binary = emulator_binary();
    if binary.is_none() {
        eprintln!(
            "\n**************************************************************\n\
             SKIPPED: no Flow emulator ({what}; set FLOW_EMULATOR=/path/to/\n\
             flow-emulator or put the Flow CLI on PATH to run it on Flow)\n\
             **************************************************************\n"
        );
    }
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_agrees_on_a_flow_emulator() {
    let Some(binary) = emulator_or_skip("the scenario suite") else {
        return;
    };
    let _one_at_a_time = EMULATOR_LOCK.lock().await;
    let emulator = Emulator::start(&binary).await;
    eprintln!(
        "flow emulator {} at {}",
        binary.display(),
        emulator.access_api
    );
    let only = std::env::var("FLOWNET_SCENARIO").ok();
    for scenario in load_scenarios() {
        if only.as_deref().is_some_and(|o| !scenario.file.contains(o)) {
            continue;
        }
        let started = std::time::Instant::now();
        let embedded = EmbeddedHarness::new(&scenario).await;
        let expected = run(&scenario, &embedded).await;
        let flow = FlowHarness::new(&emulator, &scenario).await;
        let got = run(&scenario, &flow).await;
        for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
            match (e, g) {
                (Record::NotApplicable, Record::Refused(_)) => {}
                _ => assert_eq!(
                    g, e,
                    "{} step {i}: Flow and the embedded ledger disagree on {}",
                    scenario.file, scenario.steps[i]
                ),
            }
        }
        eprintln!(
            "flow: {} agrees with the embedded ledger ({} steps, {:.1} s)",
            scenario.file,
            got.len(),
            started.elapsed().as_secs_f64()
        );
    }
}
