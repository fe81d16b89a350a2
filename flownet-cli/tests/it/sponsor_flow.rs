//! `flownet sponsor` over HTTP on a live Flow emulator (`FLOW_EMULATOR`, else
//! skipped): a user whose transactions the service pays submits a task
//! through `FLOWNET_FLOW_SPONSOR_URL`'s client, a script that is not a
//! FlowNet template is refused with 403, and the rate limit answers 429.

use std::{
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use flownet_chain::flow::{
    AccessClient, FlowConfig, FlowKey, FlowLedger, FlowSigner, HashAlgorithm, ProposalKey,
    SignatureAlgorithm, SponsorPolicy, Transaction, Whitelist,
};
use flownet_cli::sponsor::{HttpPayer, SponsorRequest, router};
use flownet_core::{
    Address, Amount, Error, Ledger, LedgerConfig, OfferedModel, SigningKey, crypto::sha256,
};

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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(super) async fn start_emulator(binary: &str) -> (Emulator, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--rest-port", &free_port().to_string()])
        .args(["--admin-port", &free_port().to_string()])
        .args(["--debugger-port", &free_port().to_string()])
        .args(["--service-priv-key", SERVICE_KEY_HEX])
        .args([
            "--service-sig-algo",
            "ECDSA_P256",
            "--service-hash-algo",
            "SHA3_256",
        ])
        .arg("--transaction-fees")
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
    (emulator, api)
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
    let Some(binary) = std::env::var("FLOW_EMULATOR")
        .ok()
        .filter(|b| !b.is_empty())
    else {
        eprintln!("SKIPPED: no Flow emulator (set FLOW_EMULATOR=/path/to/flow-emulator)");
        return;
    };
    let (_emulator, api) = start_emulator(&binary).await;
    let mut network = flownet_chain::flow::Network::named("emulator").unwrap();
    network.access_api = api.clone();
    let service = FlowSigner::new(
        SERVICE_ADDRESS,
        0,
        FlowKey::from_bytes(
            SignatureAlgorithm::EcdsaP256,
            HashAlgorithm::Sha3_256,
            &hex::decode(SERVICE_KEY_HEX).unwrap(),
        )
        .unwrap(),
    );
    let config = LedgerConfig {
        claim_window_s: 60,
        fulfil_window_s: 60,
        bounty_window_s: 60,
        faucet_amount: Amount::tokens(1000),
    };
    FlowLedger::deploy(&network, &service, &config)
        .await
        .unwrap();
    let network = network.with_flownet_at(SERVICE_ADDRESS);

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
    tokio::spawn(async move { axum::serve(listener, app).await });

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
    node.register_node(
        "echo node",
        "http://127.0.0.1:9",
        vec![OfferedModel {
            model_id: "echo-v1".into(),
            weights_sha256: sha256(b"echo-v1"),
            price: Amount::tokens(2),
        }],
    )
    .await
    .unwrap();
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
