//! Gasless on a live emulator (skipped without one): a user whose account
//! holds no spendable FLOW has it created, takes the faucet once and submits
//! a task through a [`Sponsor`] that pays as payer only (and authorizes the
//! faucet); a script that is not a FlowNet template is refused; the
//! per-account rate limit bites.

use std::{sync::Arc, time::Duration};

use flownet_chain::flow::{
    AccessClient, AccountPolicy, FlowConfig, FlowKey, FlowLedger, FlowSigner, Sponsor,
    SponsorPolicy, Whitelist,
};
use flownet_core::{
    Amount, Error, Ledger, LedgerConfig, OfferedModel, SigningKey, TaskStatus, memory::EchoEngine,
};

use crate::scenarios::on_flow::{EMULATOR_LOCK, Emulator, emulator_or_skip};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_flow_submits_through_the_sponsor() {
    let Some(binary) = emulator_or_skip("the sponsor test") else {
        return;
    };
    let _one_at_a_time = EMULATOR_LOCK.lock().await;
    let emulator = Emulator::start(&binary).await;
    let network = emulator.network();
    let service = emulator.service();

    // FlowNet deployed to an admin account, which also pays as the sponsor.
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
    let network = network.with_flownet_at(admin.address);

    // Everything goes through the sponsor, account creation and the faucet
    // included: this client holds no key that can pay. The new accounts get
    // no FLOW beyond what account creation itself stores.
    let policy = SponsorPolicy {
        burst: 4,
        period: Duration::from_secs(3600),
        max_gas_limit: 9999,
        ..SponsorPolicy::unmetered()
    };
    let accounts = AccountPolicy::default();
    let sponsor = Sponsor::new(
        AccessClient::connect(&emulator.access_api).await.unwrap(),
        admin.clone(),
        Whitelist::for_network(&network).unwrap(),
        &policy,
    )
    .with_accounts(&network, &accounts)
    .unwrap();
    let mut user_config = FlowConfig::new(network.clone());
    user_config.payer = Some(Arc::new(sponsor));
    let ledger = Arc::new(FlowLedger::connect(user_config).await.unwrap());
    let node_key = SigningKey::generate();
    let node_address = ledger.create_account(&node_key).await.unwrap();
    let user_key = SigningKey::generate();
    let user_address = ledger.create_account(&user_key).await.unwrap();
    // The same key again: the sponsor made its account already.
    let err = ledger.create_account(&user_key).await.unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyExists(m) if m.contains(&user_address.to_string())),
        "{err}"
    );
    let faucet = ledger.wallet(user_key.clone(), user_address);
    let granted = faucet.faucet().await.unwrap();
    assert_eq!(granted.outcome.credited, Some(Amount::tokens(1000)));
    assert_eq!(
        faucet.faucet().await.unwrap_err(),
        Error::Faucet(format!(
            "account {user_address} has already received its welcome amount"
        ))
    );

    let client = ledger.client().clone();
    let flow_of = |a| {
        let client = client.clone();
        async move { client.account(a).await.unwrap().unwrap().balance }
    };
    let (user_flow, node_flow, sponsor_flow) = (
        flow_of(user_address).await,
        flow_of(node_address).await,
        flow_of(admin.address).await,
    );

    let node = ledger.wallet(node_key, node_address);
    let model = EchoEngine::new("echo-v1").model;
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
    let user = ledger.wallet(user_key, user_address);
    let task = user
        .submit(node_address, &model.id, "gasless", "{}", Amount::tokens(2))
        .await
        .unwrap();
    assert_eq!(
        ledger.task(task).await.unwrap().unwrap().status,
        TaskStatus::Open
    );
    assert_eq!(
        ledger.account(user_address).await.unwrap().unwrap().balance,
        Amount::tokens(998)
    );
    // The fees came out of the sponsor's FLOW, none out of the users'.
    assert_eq!(flow_of(user_address).await, user_flow);
    assert_eq!(flow_of(node_address).await, node_flow);
    assert!(flow_of(admin.address).await < sponsor_flow);

    // A script that is not one of FlowNet's templates is refused before
    // anything is sent, whoever signs it.
    let err = ledger
        .run_transaction(
            "transaction { prepare(a: &Account) { log(a.address) } }",
            &[],
            user_address,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized(m) if m.contains("not one of FlowNet's transaction templates")),
        "{err}"
    );

    // Burst 4: the faucet, the user's submit, then a cancel and a second
    // submit; the fifth transaction is refused until the bucket refills.
    user.cancel(task).await.unwrap();
    user.submit(node_address, &model.id, "again", "{}", Amount::tokens(2))
        .await
        .unwrap();
    let err = user
        .submit(node_address, &model.id, "too many", "{}", Amount::tokens(2))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized(m) if m.contains("rate limited")),
        "{err}"
    );
    // The node's bucket is its own.
    node.set_node_active(false).await.unwrap();
}
