//! Marketplace throughput: one task's whole life (submit → claim → fulfil → two
//! ratings) per iteration, on the embedded SQLite ledger and on the bare rulebook.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flownet_core::{
    Action, Amount, Digest32, Envelope, LedgerConfig, OfferedModel, OutputRef, SigningKey,
    memory::MemoryStore, rules,
};

fn embedded(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let market = rt.block_on(flownet_benches::Market::new()).unwrap();
    let mut g = c.benchmark_group("ledger");
    g.throughput(Throughput::Elements(1));
    g.bench_function("embedded_sqlite/task_lifecycle", |b| {
        b.iter(|| rt.block_on(market.lifecycle()).unwrap())
    });
    g.finish();
}

/// The rulebook alone over the in-memory store: signature checks and rules, no I/O.
fn rulebook(c: &mut Criterion) {
    let ledger = Digest32([1; 32]);
    let config = LedgerConfig {
        faucet_amount: Amount::tokens(1_000_000),
        ..LedgerConfig::default()
    };
    let mut store = MemoryStore::default();
    let keys: Vec<SigningKey> = (0..2).map(|_| SigningKey::generate()).collect();
    let addr = |k: &SigningKey| flownet_core::Address::derive(&k.public_key());
    let public_keys: Vec<_> = keys.iter().map(SigningKey::public_key).collect();
    let mut seqs = [0u64; 2];
    let mut act = |store: &mut MemoryStore, who: usize, action: Action| {
        let env = Envelope {
            ledger,
            signer: addr(&keys[who]),
            sequence: seqs[who],
            action,
        };
        seqs[who] += 1;
        rules::execute(store, &config, &ledger, &env.sign(&keys[who]), 1_000).unwrap()
    };
    for (who, public_key) in public_keys.into_iter().enumerate() {
        act(
            &mut store,
            who,
            Action::CreateAccount {
                public_key,
                hash_algo: Default::default(),
            },
        );
        act(&mut store, who, Action::Faucet);
    }
    let offer = OfferedModel {
        model_id: "bench".into(),
        weights_sha256: Digest32([1; 32]),
        price: Amount(1_000_000),
        unit: flownet_core::PriceUnit::Task,
    };
    act(
        &mut store,
        0,
        Action::RegisterNode {
            name: "n".into(),
            endpoint: "http://n".into(),
            models: vec![offer],
        },
    );
    let node = addr(&keys[0]);
    let output = OutputRef {
        sha256: Digest32([2; 32]),
        uri: "http://n/blobs/02".into(),
        mime: "image/png".into(),
        size: 1,
    };
    let mut g = c.benchmark_group("ledger");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rulebook_in_memory/task_lifecycle", |b| {
        b.iter(|| {
            let task = act(
                &mut store,
                1,
                Action::Submit {
                    node,
                    model_id: "bench".into(),
                    prompt: "p".into(),
                    params: "{}".into(),
                    max_price: Amount(1_000_000),
                    input: None,
                    max_units: 0,
                },
            )
            .task
            .unwrap();
            act(&mut store, 0, Action::Claim { task });
            act(
                &mut store,
                0,
                Action::Fulfil {
                    task,
                    result: output.clone(),
                    units: None,
                },
            );
            act(&mut store, 1, Action::Rate { task, stars: 5 });
        })
    });
    g.finish();
}

criterion_group!(benches, embedded, rulebook);
criterion_main!(benches);
