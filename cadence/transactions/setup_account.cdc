import "FlowNetMarketplace"

/// Sets the signer's existing account up for FlowNet (vault, output
/// collection, member). Safe to run again.
transaction {
    prepare(signer: auth(Storage, Capabilities) &Account) {
        FlowNetMarketplace.setupAccount(signer)
    }
}
