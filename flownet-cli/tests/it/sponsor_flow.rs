//! `flownet sponsor` over HTTP on a live Flow emulator (`FLOW_EMULATOR`, else
//! skipped): a user whose transactions the service pays submits a task
//! through `FLOWNET_FLOW_SPONSOR_URL`'s client, a script that is not a
//! FlowNet template is refused with 403, and the rate limit answers 429.
//! Users who hold nothing but a key — the CLI's SHA3-256 key and a WebCrypto
//! style SHA2-256 key — create their accounts and take the faucet through the
//! service, then submit tasks; forged account requests are refused, and
//! account creation is rate limited.

use std::{
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use flownet_chain::flow::{
    AccessClient, AccountPolicy, FlowConfig, FlowKey, FlowLedger, FlowSigner, HashAlgorithm,
    Network, Payer, ProposalKey, SignatureAlgorithm, Sponsor, SponsorError, SponsorPolicy,
    Template, Transaction, Whitelist,
};
use flownet_core::{
    Action, Address, Amount, Envelope, Error, Ledger, LedgerConfig, OfferedModel, SignedEnvelope,
    SigningKey, crypto::HashAlgo, crypto::sha256,
};
use flownet_gateway::sponsor::{HttpPayer, SponsorRequest, router, router_with_accounts};

pub(super) const SERVICE_ADDRESS: Address =
    Address([0xf8, 0xd6, 0xe0, 0x58, 0x6b, 0x0a, 0x20, 0xc7]);
pub(super) const SERVICE_KEY_HEX: &str =
    "6e1a5c6fc6b8bd2f1b2e5b7c0f7a9d1e3c5b7a9f1e3d5c7b9a1f3e5d7c9b1a3f";

pub(super) struct Emulator {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// One emulator at a time: two would share the machine's two cores.
static EMULATOR_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn emulator_binary() -> Option<String> {
    let binary = std::env::var("FLOW_EMULATOR")
        .ok()
        .filter(|b| !b.is_empty());
    if binary.is_none() {
        eprintln!("SKIPPED: no Flow emulator (set FLOW_EMULATOR=/path/to/flow-emulator)");
    }
    binary
}

fn service_signer() -> FlowSigner {
    FlowSigner::new(
        SERVICE_ADDRESS,
        0,
        FlowKey::from_bytes(
            SignatureAlgorithm::EcdsaP256,
            HashAlgorithm::Sha3_256,
            &hex::decode(SERVICE_KEY_HEX).unwrap(),
        )
        .unwrap(),
    )
}

/// An emulator with FlowNet deployed to its service account (faucet: 1000).
async fn deployed(binary: &str) -> (Emulator, String, Network) {
    let (emulator, api) = start_emulator(binary).await;
    let mut network = Network::named("emulator").unwrap();
    network.access_api = api.clone();
    let config = LedgerConfig {
        claim_window_s: 60,
        fulfil_window_s: 60,
        bounty_window_s: 60,
        faucet_amount: Amount::tokens(1000),
    };
    FlowLedger::deploy(&network, &service_signer(), &config)
        .await
        .unwrap();
    (emulator, api, network.with_flownet_at(SERVICE_ADDRESS))
}

pub(super) async fn start_emulator(binary: &str) -> (Emulator, String) {
    let dir = tempfile::tempdir().unwrap();
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
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let child = crate::loopback::emulator_command(std::path::Path::new(binary), &args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    let emulator = Emulator { child, _dir: dir };
    let api = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(c) = AccessClient::connect(&api).await
            && c.latest_block(true).await.is_ok()
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no emulator on {api}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // gRPC, REST and admin at least; every one of them on loopback.
    crate::loopback::assert_listens_only_on_loopback(emulator.child.id(), "the Flow emulator", 3);
    (emulator, api)
}

fn get(url: &str) -> serde_json::Value {
    let mut r = ureq::get(url).call().unwrap();
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
}

fn post(url: &str, body: &str) -> (u16, Option<String>, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = r.body_mut().read_to_string().unwrap();
    (
        r.status().as_u16(),
        retry,
        serde_json::from_str(&text).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sponsor_service_pays_for_templates_only_and_rate_limits() {
    let Some(binary) = emulator_binary() else {
        return;
    };
    let _one_at_a_time = EMULATOR_LOCK.lock().await;
    let (_emulator, api, network) = deployed(&binary).await;
    let service = service_signer();

    // Accounts and the faucet: the admin's in-process key, no FLOW given.
    let mut admin_config = FlowConfig::new(network.clone());
    admin_config.sponsor = Some(service.clone());
    admin_config.initial_flow = 0;
    let admin = Arc::new(FlowLedger::connect(admin_config).await.unwrap());
    let node_key = SigningKey::generate();
    let node_address = admin.create_account(&node_key).await.unwrap();
    let user_key = SigningKey::generate();
    let user_address = admin.create_account(&user_key).await.unwrap();
    admin
        .wallet(user_key.clone(), user_address)
        .faucet()
        .await
        .unwrap();

    // The service, as `flownet sponsor --burst 2` runs it.
    let policy = SponsorPolicy {
        burst: 2,
        period: Duration::from_secs(3600),
        max_gas_limit: 9999,
        ..SponsorPolicy::unmetered()
    };
    let sponsor = flownet_chain::flow::Sponsor::new(
        AccessClient::connect(&api).await.unwrap(),
        service.clone(),
        Whitelist::for_network(&network).unwrap(),
        &policy,
    );
    let app = router(sponsor, &network, &policy).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(flownet_gateway::sponsor::serve(listener, app));

    // The client side: no key that pays, only the service's URL.
    let payer = HttpPayer::connect(&url).await.unwrap();
    let mut user_config = FlowConfig::new(network.clone());
    user_config.payer = Some(Arc::new(payer));
    let ledger = Arc::new(FlowLedger::connect(user_config).await.unwrap());
    let flow_of = |a| {
        let c = ledger.client().clone();
        async move { c.account(a).await.unwrap().unwrap().balance }
    };
    let (user_flow, service_flow) = (flow_of(user_address).await, flow_of(SERVICE_ADDRESS).await);

    let node = ledger.wallet(node_key, node_address);
    register_echo_node(&node).await;
    let user = ledger.wallet(user_key.clone(), user_address);
    let task = user
        .submit(node_address, "echo-v1", "gasless", "{}", Amount::tokens(2))
        .await
        .unwrap();
    assert_eq!(
        ledger.task(task).await.unwrap().unwrap().requester,
        user_address
    );
    assert_eq!(
        flow_of(user_address).await,
        user_flow,
        "the user paid no FLOW"
    );
    assert!(flow_of(SERVICE_ADDRESS).await < service_flow);

    // Not a template: 403, whoever signed it.
    let user_flow_key = FlowKey::from_core(&user_key);
    let block = ledger.client().latest_block(true).await.unwrap().id;
    let mut rogue = Transaction::new(
        "transaction { prepare(a: &Account) { log(a.address) } }",
        vec![],
        block,
        9999,
        ProposalKey {
            address: user_address,
            key_index: 0,
            sequence_number: 2,
        },
        SERVICE_ADDRESS,
        vec![user_address],
    );
    rogue.sign_payload(user_address, 0, &user_flow_key).unwrap();
    let body = serde_json::to_string(&SponsorRequest::from_transaction(&rogue).unwrap()).unwrap();
    let (status, _, v) = post(&format!("{url}/v1/sponsor"), &body);
    assert_eq!(
        (status, v["kind"].as_str()),
        (403, Some("not_whitelisted")),
        "{v}"
    );
    // Another payer: 400.
    rogue.payer = user_address;
    rogue.payload_signatures.clear();
    let body = serde_json::to_string(&SponsorRequest::from_transaction(&rogue).unwrap()).unwrap();
    let (status, _, v) = post(&format!("{url}/v1/sponsor"), &body);
    assert_eq!(
        (status, v["kind"].as_str()),
        (400, Some("payer_mismatch")),
        "{v}"
    );

    // Burst 2: the submit, a cancel, then 429.
    user.cancel(task).await.unwrap();
    let err = user
        .submit(node_address, "echo-v1", "too many", "{}", Amount::tokens(2))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized(m) if m.contains("HTTP 429") && m.contains("rate limited")),
        "{err}"
    );
}

/// A `create_account` envelope for `key` on `ledger`, signed with `algo`.
fn create_account(
    ledger: flownet_core::LedgerId,
    key: &SigningKey,
    algo: HashAlgo,
) -> SignedEnvelope {
    Envelope {
        ledger,
        signer: Address::derive(&key.public_key()),
        sequence: 0,
        action: Action::CreateAccount {
            public_key: key.public_key(),
            hash_algo: algo,
        },
    }
    .sign_with(key, algo)
}

/// Runs the `flownet` binary on the emulator with only the service's URL:
/// no key that pays.
fn flownet(dir: &std::path::Path, api: &str, url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flownet"))
        .args(["--network", "emulator", "--json", "--data-dir"])
        .arg(dir)
        .args(["--key", "user"])
        .args(args)
        .env("FLOWNET_FLOW_ACCESS", api)
        .env("FLOWNET_FLOW_CONTRACTS", SERVICE_ADDRESS.to_string())
        .env("FLOWNET_FLOW_SPONSOR_URL", url)
        .env_remove("FLOWNET_FLOW_SPONSOR")
        .env_remove("FLOWNET_FLOW_ADMIN")
        .env_remove("FLOWNET_HOME")
        .env_remove("FLOWNET_KEY")
        .output()
        .unwrap()
}

fn ok_json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "flownet failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_only_a_key_onboards_through_the_service() {
    let Some(binary) = emulator_binary() else {
        return;
    };
    let _one_at_a_time = EMULATOR_LOCK.lock().await;
    let (_emulator, api, network) = deployed(&binary).await;
    let service = service_signer();

    // The service as `flownet sponsor` runs it, with 4 new accounts per client.
    // A light proof of work, so the CLI's, the ledger's and the raw client's
    // account creations all solve one.
    let policy = SponsorPolicy {
        pow_difficulty: 8,
        ..SponsorPolicy::default()
    };
    let accounts = AccountPolicy {
        burst: 100,
        period: Duration::from_secs(3600),
        per_client_burst: 4,
        per_client_period: Duration::from_secs(3600),
    };
    let sponsor = Sponsor::new(
        AccessClient::connect(&api).await.unwrap(),
        service.clone(),
        Whitelist::for_network(&network).unwrap(),
        &policy,
    )
    .with_accounts(&network, &accounts)
    .unwrap();
    let app = router_with_accounts(sponsor, &network, &policy, &accounts).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(flownet_gateway::sponsor::serve(listener, app));

    let payer = HttpPayer::connect(&url).await.unwrap();
    let mut config = FlowConfig::new(network.clone());
    config.payer = Some(Arc::new(payer));
    let ledger = Arc::new(FlowLedger::connect(config).await.unwrap());
    let info = get(&format!("{url}/v1/sponsor/info"));
    assert_eq!(info["ledger_id"], ledger.id().to_hex(), "{info}");
    assert_eq!(info["accounts"]["per_client_burst"], 4, "{info}");
    assert_eq!(info["accounts"]["initial_flow"], "0", "{info}");
    assert_eq!(info["accounts"]["pow_difficulty"], 8, "{info}");
    let flow_of = |a| {
        let c = ledger.client().clone();
        async move { c.account(a).await.unwrap().unwrap().balance }
    };
    let service_flow = flow_of(SERVICE_ADDRESS).await;

    // A node, created through the service by the library.
    let node_key = SigningKey::generate();
    let node_address = ledger.create_account(&node_key).await.unwrap();
    let node = ledger.wallet(node_key, node_address);
    register_echo_node(&node).await;

    // The CLI with a fresh SHA3-256 key: account, faucet once, a task.
    let dir = tempfile::tempdir().unwrap();
    let created = ok_json(&flownet(dir.path(), &api, &url, &["account", "create"]));
    let cli_address: Address = created["address"].as_str().unwrap().parse().unwrap();
    let cli_flow = flow_of(cli_address).await;
    // Only the storage deposit account creation itself makes (0.001 FLOW),
    // nothing withdrawable on top.
    assert!(
        cli_flow > 0 && cli_flow <= 100_000,
        "the account got its storage deposit only: {cli_flow}"
    );
    let granted = ok_json(&flownet(dir.path(), &api, &url, &["account", "faucet"]));
    assert_eq!(granted["granted"], "1000", "{granted}");
    let again = flownet(dir.path(), &api, &url, &["account", "faucet"]);
    assert_eq!(again.status.code(), Some(1));
    let err: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(err["error"]["kind"], "faucet", "{err}");
    assert_eq!(
        err["error"]["message"],
        format!("faucet: account {cli_address} has already received its welcome amount"),
        "{err}"
    );
    let node_arg = node_address.to_string();
    let submitted = ok_json(&flownet(
        dir.path(),
        &api,
        &url,
        &[
            "task",
            "submit",
            "--model",
            "echo-v1",
            "--node",
            &node_arg,
            "gasless from the CLI",
        ],
    ));
    let task = submitted["task"].as_u64().unwrap();
    let t = ledger.task(task).await.unwrap().unwrap();
    assert_eq!(
        (t.requester, t.prompt.as_str()),
        (cli_address, "gasless from the CLI")
    );
    let cli_account = ledger.account(cli_address).await.unwrap().unwrap();
    assert_eq!(cli_account.balance, Amount::tokens(998));
    assert_eq!(cli_account.hash_algo, HashAlgo::Sha3_256);
    assert_eq!(
        flow_of(cli_address).await,
        cli_flow,
        "the user paid no FLOW"
    );

    // A WebCrypto-style SHA2-256 key, through the ledger's envelopes.
    let web_key = SigningKey::generate();
    let receipt = ledger
        .send(create_account(ledger.id(), &web_key, HashAlgo::Sha2_256))
        .await
        .unwrap();
    let web_address = receipt.outcome.account.unwrap();
    let web_flow = flow_of(web_address).await;
    // The client signs the Flow transactions with the account key's hash.
    ledger.add_signer(FlowSigner::new(
        web_address,
        0,
        FlowKey::from_core(&web_key),
    ));
    let sign = |sequence, action| {
        Envelope {
            ledger: ledger.id(),
            signer: web_address,
            sequence,
            action,
        }
        .sign_with(&web_key, HashAlgo::Sha2_256)
    };
    let account = ledger.account(web_address).await.unwrap().unwrap();
    assert_eq!(account.hash_algo, HashAlgo::Sha2_256);
    let r = ledger
        .send(sign(account.sequence, Action::Faucet))
        .await
        .unwrap();
    assert_eq!(r.outcome.credited, Some(Amount::tokens(1000)));
    let account = ledger.account(web_address).await.unwrap().unwrap();
    let err = ledger
        .send(sign(account.sequence, Action::Faucet))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::Faucet(format!(
            "account {web_address} has already received its welcome amount"
        ))
    );
    let r = ledger
        .send(sign(
            account.sequence,
            Action::Submit {
                node: node_address,
                model_id: "echo-v1".into(),
                prompt: "gasless from a browser key".into(),
                params: "{}".into(),
                max_price: Amount::tokens(2),
                input: None,
                max_units: 0,
            },
        ))
        .await
        .unwrap();
    let t = ledger.task(r.outcome.task.unwrap()).await.unwrap().unwrap();
    assert_eq!(t.requester, web_address);
    assert_eq!(
        flow_of(web_address).await,
        web_flow,
        "the user paid no FLOW"
    );
    assert!(
        flow_of(SERVICE_ADDRESS).await < service_flow,
        "the sponsor paid"
    );

    // Forged account requests: refused before anything reaches the chain.
    let accounts_url = format!("{url}/v1/sponsor/accounts");
    let victim = SigningKey::generate();
    let mut forged = create_account(ledger.id(), &victim, HashAlgo::Sha3_256);
    forged.signature = create_account(ledger.id(), &victim, HashAlgo::Sha3_256)
        .envelope
        .sign(&SigningKey::generate())
        .signature;
    let (status, _, v) = post(&accounts_url, &serde_json::to_string(&forged).unwrap());
    assert_eq!(
        (status, v["kind"].as_str()),
        (401, Some("bad_signature")),
        "{v}"
    );
    let elsewhere = flownet_chain::flow::ledger_id("flow-testnet", SERVICE_ADDRESS);
    let wrong = create_account(elsewhere, &victim, HashAlgo::Sha3_256);
    let (status, _, v) = post(&accounts_url, &serde_json::to_string(&wrong).unwrap());
    assert_eq!(
        (status, v["kind"].as_str()),
        (400, Some("wrong_ledger")),
        "{v}"
    );
    let (status, _, v) = post(&accounts_url, r#"{"ledger": "nonsense"}"#);
    assert_eq!(
        (status, v["kind"].as_str()),
        (400, Some("invalid_envelope")),
        "{v}"
    );
    // Through the client, the refusal is the core's typed error.
    let direct = HttpPayer::connect(&url).await.unwrap();
    assert_eq!(
        Payer::create_account(&direct, &forged, None)
            .await
            .unwrap_err(),
        SponsorError::BadEnvelopeSignature(Address::derive(&victim.public_key()))
    );

    // The faucet route co-signs the faucet only; the pay route never lets the
    // sponsor authorize, not even the faucet.
    let account = ledger.account(web_address).await.unwrap().unwrap();
    let block = ledger.client().latest_block(true).await.unwrap().id;
    let web_flow_key = FlowKey::from_bytes(
        SignatureAlgorithm::EcdsaP256,
        HashAlgorithm::Sha2_256,
        &web_key.to_bytes(),
    )
    .unwrap();
    let mut tx = Transaction::new(
        network.template(Template::Submit).unwrap(),
        vec![],
        block,
        Template::Faucet.gas_limit(),
        ProposalKey {
            address: web_address,
            key_index: 0,
            sequence_number: account.sequence,
        },
        SERVICE_ADDRESS,
        vec![web_address, SERVICE_ADDRESS],
    );
    tx.sign_payload(web_address, 0, &web_flow_key).unwrap();
    let body = serde_json::to_string(&SponsorRequest::from_transaction(&tx).unwrap()).unwrap();
    let (status, _, v) = post(&format!("{url}/v1/sponsor/faucet"), &body);
    assert_eq!(
        (status, v["kind"].as_str()),
        (403, Some("not_whitelisted")),
        "{v}"
    );
    tx.script = network.template(Template::Faucet).unwrap().into_bytes();
    tx.payload_signatures.clear();
    tx.sign_payload(web_address, 0, &web_flow_key).unwrap();
    let body = serde_json::to_string(&SponsorRequest::from_transaction(&tx).unwrap()).unwrap();
    let (status, _, v) = post(&format!("{url}/v1/sponsor"), &body);
    assert_eq!(
        (status, v["kind"].as_str()),
        (400, Some("sponsor_as_signer")),
        "{v}"
    );
    // A well-formed faucet for an account that had it: the core's error,
    // before the sponsor pays for a failing transaction.
    let (status, _, v) = post(&format!("{url}/v1/sponsor/faucet"), &body);
    assert_eq!(
        (status, v["kind"].as_str()),
        (403, Some("faucet_used")),
        "{v}"
    );
    assert_eq!(
        v["error"],
        format!("faucet: account {web_address} has already received its welcome amount")
    );

    // Three accounts from this client so far; the fourth key is one the
    // service already made an account for (409), then the limit (429).
    let repeat = create_account(ledger.id(), &web_key, HashAlgo::Sha2_256);
    let (status, _, v) = post(&accounts_url, &serde_json::to_string(&repeat).unwrap());
    assert_eq!(
        (status, v["kind"].as_str()),
        (409, Some("already_exists")),
        "{v}"
    );
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains(&web_address.to_string()),
        "{v}"
    );
    // The limit bites after the proof of work, which this request does.
    let fresh_key = SigningKey::generate();
    let fresh = create_account(ledger.id(), &fresh_key, HashAlgo::Sha3_256);
    let (status, _, v) = post(&accounts_url, &serde_json::to_string(&fresh).unwrap());
    assert_eq!(
        (status, v["kind"].as_str()),
        (403, Some("proof_of_work")),
        "{v}"
    );
    let challenge = direct
        .account_challenge(&fresh_key.public_key())
        .await
        .unwrap()
        .unwrap();
    let proof =
        flownet_chain::flow::pow::solve_challenge(&challenge, fresh_key.public_key().as_bytes())
            .unwrap();
    let body = serde_json::to_string(&flownet_gateway::sponsor::AccountRequest {
        envelope: fresh,
        pow: Some(proof),
    })
    .unwrap();
    let (status, retry, v) = post(&accounts_url, &body);
    assert_eq!(
        (status, v["kind"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!(retry > 0 && retry <= 3600, "{retry}");

    // The sponsor's own global bucket, in process: one new account, then no more.
    let tight = Sponsor::new(
        AccessClient::connect(&api).await.unwrap(),
        service.clone(),
        Whitelist::for_network(&network).unwrap(),
        &SponsorPolicy::unmetered(),
    )
    .with_accounts(
        &network,
        &AccountPolicy {
            burst: 1,
            period: Duration::from_secs(3600),
            ..AccountPolicy::default()
        },
    )
    .unwrap();
    let first = tight
        .create_account(
            &create_account(ledger.id(), &SigningKey::generate(), HashAlgo::Sha3_256),
            None,
            None,
        )
        .await
        .unwrap();
    assert!(
        ledger
            .client()
            .account(first.address)
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        tight
            .create_account(
                &create_account(ledger.id(), &SigningKey::generate(), HashAlgo::Sha3_256),
                None,
                None,
            )
            .await,
        Err(SponsorError::TooManyAccounts { retry_after_ms }) if retry_after_ms > 0
    ));

    // The `flownet sponsor` binary itself: each client IP gets its own
    // bucket from the connection (here one account an hour).
    let port = crate::support::free_port();
    let state_dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flownet"))
        .args(["--network", "emulator", "sponsor", "--listen", &listen])
        .args(["--accounts-per-client", "1", "--pow-difficulty", "0"])
        .args([
            "--state".as_ref(),
            state_dir.path().join("sponsor.sqlite").as_os_str(),
        ])
        .env("FLOWNET_FLOW_ACCESS", &api)
        .env("FLOWNET_FLOW_CONTRACTS", SERVICE_ADDRESS.to_string())
        .env(
            "FLOWNET_FLOW_SPONSOR",
            format!("{SERVICE_ADDRESS}:{SERVICE_KEY_HEX}"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let service_url = format!("http://{listen}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let binary_payer = loop {
        if let Ok(p) = HttpPayer::connect(&service_url).await {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "flownet sponsor did not start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let first = Payer::create_account(
        &binary_payer,
        &create_account(ledger.id(), &SigningKey::generate(), HashAlgo::Sha2_256),
        None,
    )
    .await;
    let second = Payer::create_account(
        &binary_payer,
        &create_account(ledger.id(), &SigningKey::generate(), HashAlgo::Sha3_256),
        None,
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let first = first.unwrap();
    assert!(
        ledger
            .client()
            .account(first.address)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        matches!(second, Err(SponsorError::TooManyAccounts { retry_after_ms }) if retry_after_ms > 1000),
        "{second:?}"
    );
}

/// Registers `node` offering the echo model at 2 FLOWNET.
async fn register_echo_node<L: flownet_core::Ledger + ?Sized>(node: &flownet_core::Wallet<L>) {
    node.register_node(
        "echo node",
        "http://127.0.0.1:9",
        vec![OfferedModel {
            model_id: "echo-v1".into(),
            weights_sha256: sha256(b"echo-v1"),
            price: Amount::tokens(2),
            unit: flownet_core::PriceUnit::Task,
        }],
    )
    .await
    .unwrap();
}
