use flownet_core::{
    Action, Address, Amount, Digest32, Envelope, LedgerConfig, OfferedModel, Outcome, Result,
    SigningKey, memory::MemoryStore, rules,
};

/// A rulebook driven directly, with a clock and named keys.
pub struct World {
    pub store: MemoryStore,
    pub config: LedgerConfig,
    pub ledger: Digest32,
    pub now: u64,
}

pub struct Actor {
    pub key: SigningKey,
    pub address: Address,
}

impl Actor {
    pub fn new() -> Self {
        let key = SigningKey::generate();
        Self {
            address: Address::derive(&key.public_key()),
            key,
        }
    }
}

pub const MODEL: &str = "terrain";

pub fn weights() -> Digest32 {
    Digest32([0xab; 32])
}

impl World {
    pub fn new() -> Self {
        Self {
            store: MemoryStore::default(),
            config: LedgerConfig::default(),
            ledger: Digest32([1; 32]),
            now: 1_000_000,
        }
    }

    pub fn seq(&self, a: &Actor) -> u64 {
        self.store
            .state
            .accounts
            .get(&a.address)
            .map_or(0, |acc| acc.sequence)
    }

    pub fn act(&mut self, who: &Actor, action: Action) -> Result<Outcome> {
        let env = Envelope {
            ledger: self.ledger,
            signer: who.address,
            sequence: self.seq(who),
            action,
        };
        let out = rules::execute(
            &mut self.store,
            &self.config,
            &self.ledger,
            &env.sign(&who.key),
            self.now,
        );
        self.store
            .state
            .check_invariants()
            .expect("invariants hold after every action");
        out
    }

    /// A funded account.
    pub fn funded(&mut self) -> Actor {
        let a = Actor::new();
        self.act(
            &a,
            Action::CreateAccount {
                public_key: a.key.public_key(),
                hash_algo: Default::default(),
            },
        )
        .unwrap();
        self.act(&a, Action::Faucet).unwrap();
        a
    }

    pub fn balance(&self, a: &Actor) -> Amount {
        self.store.state.accounts[&a.address].balance
    }

    /// A funded node owner offering MODEL at `price`.
    pub fn node(&mut self, price: Amount) -> Actor {
        let n = self.funded();
        self.act(
            &n,
            Action::RegisterNode {
                name: "test node".into(),
                endpoint: "http://127.0.0.1:7070".into(),
                models: vec![OfferedModel {
                    model_id: MODEL.into(),
                    weights_sha256: weights(),
                    price,
                    unit: flownet_core::PriceUnit::Task,
                }],
            },
        )
        .unwrap();
        n
    }

    pub fn submit(&mut self, user: &Actor, node: &Actor, max_price: Amount) -> Result<u64> {
        self.act(
            user,
            Action::Submit {
                node: node.address,
                model_id: MODEL.into(),
                prompt: "rolling hills".into(),
                params: "{}".into(),
                max_price,
                input: None,
                max_units: 0,
            },
        )
        .map(|o| o.task.unwrap())
    }

    pub fn output() -> flownet_core::OutputRef {
        flownet_core::OutputRef {
            sha256: Digest32([7; 32]),
            uri: "http://127.0.0.1:7070/blobs/0707".into(),
            mime: "image/png".into(),
            size: 1234,
        }
    }

    /// A fulfilled task of `user` on `node`.
    pub fn fulfilled(&mut self, user: &Actor, node: &Actor) -> u64 {
        let id = self.submit(user, node, Amount::tokens(100)).unwrap();
        self.act(node, Action::Claim { task: id }).unwrap();
        self.act(
            node,
            Action::Fulfil {
                task: id,
                result: Self::output(),
                units: None,
            },
        )
        .unwrap();
        id
    }
}
