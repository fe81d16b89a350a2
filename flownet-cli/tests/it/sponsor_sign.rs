//! The sponsor's sign-only path, used by the web page on Flow: `POST
//! /v1/sponsor/sign` and `/v1/sponsor/faucet/sign` of `flownet sponsor` and its
//! client `HttpPayer`. The refusals that need no chain run
//! always; the rest runs on a live emulator (`FLOW_EMULATOR`, else skipped).

use std::{sync::Arc, time::Duration};

use flownet_chain::flow::{
    AccessClient, FlowConfig, FlowKey, FlowLedger, FlowSigner, HashAlgorithm, Network, Payer,
    ProposalKey, SignatureAlgorithm, SponsorError, SponsorPolicy, Template, Transaction, Whitelist,
    keys,
};
use flownet_core::{Address, Amount, Ledger, LedgerConfig, SigningKey};
use flownet_gateway::sponsor::{HttpPayer, SignedByPayer, SponsorRequest, router};

use super::sponsor_flow::{SERVICE_ADDRESS, SERVICE_KEY_HEX, start_emulator};

fn service() -> FlowSigner {
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

/// The service on a free port over `api`; its URL.
async fn serve(api: &str, network: &Network) -> String {
    let policy = SponsorPolicy::default();
    let mut sponsor = flownet_chain::flow::Sponsor::new(
        AccessClient::connect_lazy(api).unwrap(),
        service(),
        Whitelist::for_network(network).unwrap(),
        &policy,
    );
    // Deployed networks only: the faucet's and accounts' templates name FlowNet.
    if network.marketplace().is_ok() {
        sponsor = sponsor
            .with_accounts(network, &flownet_chain::flow::AccountPolicy::default())
            .unwrap();
    }
    let app = router(sponsor, network, &policy).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(flownet_gateway::sponsor::serve(listener, app));
    url
}

fn tx(script: impl Into<Vec<u8>>, user: Address, sequence: u64, block: [u8; 32]) -> Transaction {
    Transaction::new(
        script,
        vec![],
        block,
        // Setup and the faucet: their templates' own limit, all a sponsor pays for.
        1000,
        ProposalKey {
            address: user,
            key_index: 0,
            sequence_number: sequence,
        },
        SERVICE_ADDRESS,
        vec![user],
    )
}

fn post(url: &str, body: &str) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    (r.status().as_u16(), serde_json::from_str(&text).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_only_refuses_scripts_that_are_not_templates_and_malformed_requests() {
    // No chain is needed to refuse these: nothing listens at the Access API.
    let network = Network::named("emulator")
        .unwrap()
        .with_flownet_at(SERVICE_ADDRESS);
    let url = serve("http://127.0.0.1:1", &network).await;
    let user = Address([0, 0, 0, 0, 0, 0, 0, 5]);
    let key = FlowKey::generate(SignatureAlgorithm::EcdsaP256, HashAlgorithm::Sha2_256);
    let mut rogue = tx(
        "transaction { prepare(a: &Account) { log(a.address) } }",
        user,
        0,
        [1; 32],
    );
    rogue.sign_payload(user, 0, &key).unwrap();
    let body = serde_json::to_string(&SponsorRequest::from_transaction(&rogue).unwrap()).unwrap();
    let (status, v) = post(&format!("{url}/v1/sponsor/sign"), &body);
    assert_eq!(
        (status, v["kind"].as_str()),
        (403, Some("not_whitelisted")),
        "{v}"
    );
    let (status, v) = post(&format!("{url}/v1/sponsor/sign"), r#"{"script": 1}"#);
    assert_eq!(
        (status, v["kind"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );

    // The client keeps the refusal typed.
    let payer = HttpPayer::connect(&url).await.unwrap();
    assert_eq!(payer.address(), SERVICE_ADDRESS);
    assert_eq!(
        payer.key_index(),
        0,
        "the service says which key it signs with"
    );
    let err = payer.sign_envelope(rogue.clone()).await.unwrap_err();
    assert!(
        matches!(&err, SponsorError::NotWhitelisted { sha3_256 } if sha3_256.len() == 64),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_only_signs_templates_that_the_client_sends_itself_on_a_flow_emulator() {
    let Some(binary) = std::env::var("FLOW_EMULATOR")
        .ok()
        .filter(|b| !b.is_empty())
    else {
        eprintln!("SKIPPED: no Flow emulator (set FLOW_EMULATOR=/path/to/flow-emulator)");
        return;
    };
    let (_emulator, api) = start_emulator(&binary).await;
    let mut network = Network::named("emulator").unwrap();
    network.access_api = api.clone();
    let config = LedgerConfig {
        claim_window_s: 60,
        fulfil_window_s: 60,
        bounty_window_s: 60,
        faucet_amount: Amount::tokens(1000),
    };
    FlowLedger::deploy(&network, &service(), &config)
        .await
        .unwrap();
    let network = network.with_flownet_at(SERVICE_ADDRESS);
    let mut admin_config = FlowConfig::new(network.clone());
    admin_config.sponsor = Some(service());
    let admin = Arc::new(FlowLedger::connect(admin_config).await.unwrap());
    let user_key = SigningKey::generate();
    let user = admin.create_account(&user_key).await.unwrap();
    let user_flow_key = FlowKey::from_core(&user_key);
    let client = admin.client().clone();
    let url = serve(&api, &network).await;
    let payer = HttpPayer::connect(&url).await.unwrap();
    let sequence = |c: AccessClient| async move {
        c.account(user).await.unwrap().unwrap().keys[0].sequence_number
    };
    let block = client.latest_block(true).await.unwrap().id;

    // A payload signed by another key: 401, typed by the client.
    let setup = network.template(Template::SetupAccount).unwrap();
    let mut forged = tx(setup.clone(), user, sequence(client.clone()).await, block);
    forged
        .sign_payload(
            user,
            0,
            &FlowKey::generate(SignatureAlgorithm::EcdsaP256, HashAlgorithm::Sha3_256),
        )
        .unwrap();
    let body = serde_json::to_string(&SponsorRequest::from_transaction(&forged).unwrap()).unwrap();
    let (status, v) = post(&format!("{url}/v1/sponsor/sign"), &body);
    assert_eq!(
        (status, v["kind"].as_str()),
        (401, Some("bad_payload_signature")),
        "{v}"
    );
    assert!(matches!(
        payer.sign_envelope(forged).await.unwrap_err(),
        SponsorError::BadPayloadSignature { address, .. } if address == user
    ));

    // A template the user signed: the service signs the envelope and sends nothing;
    // the client sends it, and it seals with the sponsor paying.
    let before = sequence(client.clone()).await;
    let mut good = tx(setup, user, before, block);
    good.sign_payload(user, 0, &user_flow_key).unwrap();
    let body = serde_json::to_string(&SponsorRequest::from_transaction(&good).unwrap()).unwrap();
    let (status, v) = post(&format!("{url}/v1/sponsor/sign"), &body);
    assert_eq!(status, 200, "{v}");
    let answer: SignedByPayer = serde_json::from_value(v).unwrap();
    assert_eq!(answer.address, SERVICE_ADDRESS);
    assert_eq!(answer.id.len(), 64);
    assert_ne!(
        answer.id,
        hex::encode(good.id().unwrap()),
        "the id covers the signatures"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sequence(client.clone()).await,
        before,
        "signing sent nothing"
    );
    let signed = payer.sign_envelope(good.clone()).await.unwrap();
    let s = &signed.envelope_signatures[0];
    assert!(keys::verify(
        SignatureAlgorithm::EcdsaP256,
        HashAlgorithm::Sha3_256,
        &service().key.public_key(),
        &keys::padded_tag(keys::TRANSACTION_DOMAIN_TAG),
        &signed.envelope_message().unwrap(),
        &s.signature,
    ));
    let id = client.send_transaction(&signed).await.unwrap();
    assert_eq!(id, signed.id().unwrap());
    let r = client
        .wait_sealed(id, Duration::from_millis(100), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(r.error_message, "");
    assert_eq!(sequence(client.clone()).await, before + 1);

    // The faucet's co-signature through the service, sign only (what the page
    // uses): the sponsor pays and authorizes; the user's payload signature is
    // checked first.
    let faucet = network.template(Template::Faucet).unwrap();
    let block = client.latest_block(true).await.unwrap().id;
    let mut grant = tx(faucet, user, before + 1, block);
    grant.authorizers.push(SERVICE_ADDRESS);
    let mut forged = grant.clone();
    forged
        .sign_payload(
            user,
            0,
            &FlowKey::generate(SignatureAlgorithm::EcdsaP256, HashAlgorithm::Sha3_256),
        )
        .unwrap();
    assert!(matches!(
        payer.sign_faucet(forged).await.unwrap_err(),
        SponsorError::BadPayloadSignature { .. }
    ));
    let mut only_user = grant.clone();
    only_user.authorizers = vec![user];
    only_user.sign_payload(user, 0, &user_flow_key).unwrap();
    assert!(payer.sign_faucet(only_user).await.is_err());
    grant.sign_payload(user, 0, &user_flow_key).unwrap();
    let signed = payer.sign_faucet(grant.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sequence(client.clone()).await,
        before + 1,
        "signing sent nothing"
    );
    let id = client.send_transaction(&signed).await.unwrap();
    let r = client
        .wait_sealed(id, Duration::from_millis(100), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(r.error_message, "");
    let account = admin.account(user).await.unwrap().unwrap();
    assert_eq!(account.balance, Amount::tokens(1000));
    assert!(account.faucet_used);
}
