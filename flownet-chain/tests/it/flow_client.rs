//! The Flow client against a live emulator (skipped without one, like the
//! scenario suite): every key pairing and the signing rules accepted by the
//! chain, the transaction id, the node runtime unchanged on Flow, the task
//! feed by events, the replay and forgery checks, and the contracts' views.

use std::{sync::Arc, time::Duration};

use flownet_chain::flow::{
    FlowConfig, FlowKey, FlowLedger, FlowSigner, HashAlgorithm, ProposalKey, SignatureAlgorithm,
    Transaction, Value,
};
use flownet_core::{
    Action, Amount, Envelope, Error, Ledger, LedgerConfig, NodeWorker, OfferedModel, SigningKey,
    TaskStatus,
    memory::{EchoEngine, MemoryBlobs},
};

use crate::scenarios::on_flow::{EMULATOR_LOCK, Emulator, emulator_or_skip};

const ADD_KEY_ACCOUNT: &str = r#"
transaction(publicKey: String, algorithm: UInt8, hash: UInt8) {
    prepare(funder: auth(BorrowValue) &Account) {
        let account = Account(payer: funder)
        account.keys.add(
            publicKey: PublicKey(publicKey: publicKey.decodeHex(), signatureAlgorithm: SignatureAlgorithm(rawValue: algorithm)!),
            hashAlgorithm: HashAlgorithm(rawValue: hash)!,
            weight: 1000.0
        )
    }
}
"#;

const THREE_AUTHORIZERS: &str = r#"
transaction(note: String) {
    prepare(a: &Account, b: &Account, c: &Account) {
        log(note.concat(a.address.toString()).concat(b.address.toString()).concat(c.address.toString()))
    }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_and_the_node_runtime_work_on_a_flow_emulator() {
    let Some(binary) = emulator_or_skip("the Flow client test") else {
        return;
    };
    let _one_at_a_time = EMULATOR_LOCK.lock().await;
    let emulator = Emulator::start(&binary).await;
    let network = emulator.network();
    let service = emulator.service();
    let client = flownet_chain::flow::AccessClient::connect(&emulator.access_api)
        .await
        .unwrap();

    // Every key pairing signs transactions the chain accepts, including a
    // transaction with a separate payer and three authorizers whose payload
    // signatures must be ordered by signer index.
    let mut signers = Vec::new();
    for (alg, hash) in [
        (SignatureAlgorithm::EcdsaP256, HashAlgorithm::Sha3_256),
        (SignatureAlgorithm::EcdsaP256, HashAlgorithm::Sha2_256),
        (SignatureAlgorithm::EcdsaSecp256k1, HashAlgorithm::Sha3_256),
        (SignatureAlgorithm::EcdsaSecp256k1, HashAlgorithm::Sha2_256),
    ] {
        let key = FlowKey::generate(alg, hash);
        let r = send(
            &client,
            ADD_KEY_ACCOUNT,
            &[
                Value::string(hex(&key.public_key())),
                Value::uint8(alg as u8 - 1),
                Value::uint8(hash as u8),
            ],
            &service,
            &service,
            &[],
        )
        .await;
        assert!(
            r.error_message.is_empty(),
            "{alg:?}/{hash:?}: {}",
            r.error_message
        );
        let address = r
            .events
            .iter()
            .find(|e| e.r#type == "flow.AccountCreated")
            .unwrap()
            .value
            .field("address")
            .unwrap()
            .as_address()
            .unwrap();
        signers.push(FlowSigner::new(address, 0, key));
    }
    let r = send(
        &client,
        THREE_AUTHORIZERS,
        &[Value::string("three ")],
        &signers[3],
        &service,
        &[signers[1].clone(), signers[2].clone(), signers[0].clone()],
    )
    .await;
    assert!(r.error_message.is_empty(), "{}", r.error_message);

    // FlowNet deployed with short windows, a sponsor paying for everyone.
    let admin_key = SigningKey::generate();
    let admin = FlowLedger::create_funded_account(
        &network,
        &service,
        admin_key.public_key().as_bytes(),
        100 * 100_000_000,
    )
    .await
    .unwrap();
    let admin = FlowSigner::new(admin, 0, FlowKey::from_core(&admin_key));
    let config = LedgerConfig {
        claim_window_s: 60,
        fulfil_window_s: 60,
        bounty_window_s: 60,
        faucet_amount: Amount::tokens(1000),
    };
    FlowLedger::deploy(&network, &admin, &config).await.unwrap();
    let mut flow_config = FlowConfig::new(network.with_flownet_at(admin.address));
    flow_config.sponsor = Some(admin.clone());
    let ledger = Arc::new(FlowLedger::connect(flow_config).await.unwrap());
    let info = ledger.info().await.unwrap();
    assert_eq!(info.network, "emulator");
    assert_eq!(info.config, config);

    let node_key = SigningKey::generate();
    let node_address = ledger.create_account(&node_key).await.unwrap();
    let node = Arc::new(ledger.wallet(node_key, node_address));
    let user_key = SigningKey::generate();
    let user_address = ledger.create_account(&user_key).await.unwrap();
    let user = ledger.wallet(user_key.clone(), user_address);
    user.faucet().await.unwrap();

    // The node runtime, unchanged: register the engine's models, take the
    // task, run it, deliver, get paid.
    let engine = Arc::new(EchoEngine::new("echo-v1"));
    let model = engine.model.clone();
    node.register_node(
        "echo node",
        "http://127.0.0.1:9",
        vec![OfferedModel {
            model_id: model.id.clone(),
            weights_sha256: model.weights_sha256,
            price: Amount::tokens(2),
            unit: flownet_core::PriceUnit::Task,
        }],
    )
    .await
    .unwrap();
    let start = ledger.info().await.unwrap().height;
    let task = user
        .submit(
            node_address,
            &model.id,
            "hello flow",
            "{\"seed\":7}",
            Amount::tokens(2),
        )
        .await
        .unwrap();
    let worker = NodeWorker::new(
        node.clone(),
        engine.clone(),
        Arc::new(MemoryBlobs::default()),
        "http://127.0.0.1:9",
    );
    let delivered = worker.tick(&|_| {}).await.unwrap();
    assert_eq!(delivered, 1);
    let t = ledger.task(task).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Fulfilled);
    assert_eq!(
        t.result.as_ref().unwrap().sha256,
        flownet_core::crypto::sha256(b"hello flow")
    );
    assert_eq!(
        ledger.account(node_address).await.unwrap().unwrap().balance,
        Amount(180_000_000)
    );
    // A second task: the worker's next ticks read only what is after the first.
    let second = user
        .submit(node_address, &model.id, "again", "{}", Amount::tokens(2))
        .await
        .unwrap();
    assert_eq!(worker.floor(), task - 1);
    assert_eq!(worker.tick(&|_| {}).await.unwrap(), 1);
    worker.tick(&|_| {}).await.unwrap();
    assert_eq!(worker.floor(), second);
    for (after, expected) in [
        (0, vec![task, second]),
        (task, vec![second]),
        (second, vec![]),
    ] {
        let got: Vec<u64> = ledger
            .tasks(flownet_core::TaskQuery {
                node: Some(node_address),
                after: Some(after),
                ..Default::default()
            })
            .await
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(got, expected, "tasks after {after}");
    }
    let nfts = ledger.nfts(user_address).await.unwrap();
    assert_eq!(nfts.len(), 2);
    let nfts: Vec<_> = nfts.into_iter().filter(|n| n.task == task).collect();
    assert_eq!(nfts.len(), 1);
    assert_eq!(nfts[0].prompt, "hello flow");
    assert_eq!(nfts[0].weights_sha256, model.weights_sha256);

    // The task feed: the submissions are events in the block range.
    let end = ledger.info().await.unwrap().height;
    let blocks = ledger.events("TaskSubmitted", start, end).await.unwrap();
    let ids: Vec<u64> = blocks
        .iter()
        .flat_map(|b| &b.events)
        .map(|e| e.value.field("id").unwrap().as_u64().unwrap())
        .collect();
    assert_eq!(ids, [task, second]);

    // The output NFT's and the token's metadata views resolve.
    let views = client
        .execute_script(
            network_script(&ledger, VIEWS_SCRIPT).as_bytes(),
            &[Value::Address(user_address), Value::uint64(nfts[0].id)],
        )
        .await
        .unwrap();
    let views: Vec<String> = views
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        views,
        [
            "FlowNet output #1",
            "serial 1",
            "prompt=hello flow",
            "FLOWNET",
            "supply 1000.00000000",
            "FlowNet outputs",
        ]
    );

    // Replays and forgeries are refused before anything reaches the chain.
    let account = ledger.account(user_address).await.unwrap().unwrap();
    let stale = Envelope {
        ledger: info.id,
        signer: user_address,
        sequence: account.sequence - 1,
        action: Action::Rate { task, stars: 5 },
    }
    .sign(&user_key);
    assert!(matches!(
        ledger.send(stale).await,
        Err(Error::BadSequence { .. })
    ));
    let forged = Envelope {
        ledger: info.id,
        signer: user_address,
        sequence: account.sequence,
        action: Action::Rate { task, stars: 5 },
    }
    .sign(&SigningKey::generate());
    assert!(matches!(
        ledger.send(forged).await,
        Err(Error::BadSignature(_))
    ));
    let receipt = user.rate(task, 5).await.unwrap();
    assert_eq!(receipt.outcome.credited, Some(Amount(5_000_000)));
    assert!(receipt.at > 0 && receipt.height > end);
}

const VIEWS_SCRIPT: &str = r#"
import "MetadataViews"
import "FungibleTokenMetadataViews"
import "FlowNetToken"
import "FlowNetOutput"

access(all) fun main(owner: Address, id: UInt64): [String] {
    let collection = getAccount(owner).capabilities.borrow<&FlowNetOutput.Collection>(FlowNetOutput.CollectionPublicPath)!
    let nft = collection.borrowViewResolver(id: id)!
    let display = MetadataViews.getDisplay(nft)!
    let serial = MetadataViews.getSerial(nft)!
    let traits = MetadataViews.getTraits(nft)!
    var prompt = ""
    for t in traits.traits {
        if t.name == "prompt" {
            prompt = t.value as! String
        }
    }
    let ft = FlowNetToken.resolveContractView(resourceType: nil, viewType: Type<FungibleTokenMetadataViews.FTDisplay>())! as! FungibleTokenMetadataViews.FTDisplay
    let supply = FlowNetToken.resolveContractView(resourceType: nil, viewType: Type<FungibleTokenMetadataViews.TotalSupply>())! as! FungibleTokenMetadataViews.TotalSupply
    let collectionDisplay = FlowNetOutput.resolveContractView(resourceType: nil, viewType: Type<MetadataViews.NFTCollectionDisplay>())! as! MetadataViews.NFTCollectionDisplay
    return [
        display.name,
        "serial ".concat(serial.number.toString()),
        "prompt=".concat(prompt),
        ft.symbol,
        "supply ".concat(supply.supply.toString()),
        collectionDisplay.name
    ]
}
"#;

fn network_script(ledger: &FlowLedger, code: &str) -> String {
    ledger.network().resolve(code).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Builds, signs (payload by proposer and authorizers, envelope by payer),
/// sends and seals a transaction with the low-level API, and checks that the
/// chain names it by the id the Rust encoder computes.
async fn send(
    client: &flownet_chain::flow::AccessClient,
    code: &str,
    args: &[Value],
    proposer: &FlowSigner,
    payer: &FlowSigner,
    authorizers: &[FlowSigner],
) -> flownet_chain::flow::access::TransactionResult {
    let seq = client
        .account(proposer.address)
        .await
        .unwrap()
        .unwrap()
        .keys[proposer.key_index as usize]
        .sequence_number;
    let mut tx = Transaction::new(
        code,
        args.iter().map(Value::to_json_bytes).collect(),
        client.latest_block(true).await.unwrap().id,
        9999,
        ProposalKey {
            address: proposer.address,
            key_index: proposer.key_index,
            sequence_number: seq,
        },
        payer.address,
        if authorizers.is_empty() {
            vec![payer.address]
        } else {
            authorizers.iter().map(|a| a.address).collect()
        },
    );
    for s in std::iter::once(proposer).chain(authorizers) {
        if s.address != payer.address {
            tx.sign_payload(s.address, s.key_index, &s.key).unwrap();
        }
    }
    tx.sign_envelope(payer.address, payer.key_index, &payer.key)
        .unwrap();
    let id = client.send_transaction(&tx).await.unwrap();
    assert_eq!(
        id,
        tx.id().unwrap(),
        "the chain's transaction id is the encoder's"
    );
    client
        .wait_sealed(id, Duration::from_millis(100), Duration::from_secs(60))
        .await
        .unwrap()
}
