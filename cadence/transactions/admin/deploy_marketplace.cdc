/// Deploys FlowNetMarketplace to the signer's account (which must hold
/// FlowNetToken and FlowNetOutput) with the ledger's configuration.
transaction(code: String, claimWindow: UInt64, fulfilWindow: UInt64, bountyWindow: UInt64, faucetAmount: UFix64) {
    prepare(admin: auth(AddContract) &Account) {
        admin.contracts.add(
            name: "FlowNetMarketplace",
            code: code.utf8,
            claimWindow,
            fulfilWindow,
            bountyWindow,
            faucetAmount
        )
    }
}
