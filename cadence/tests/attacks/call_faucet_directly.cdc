import "FlowNetMarketplace"

/// Hostile: skip the Sponsor and its once-per-account check by calling the
/// marketplace's faucet function itself. It is access(contract): rejected
/// by the type checker.
transaction {
    prepare(attacker: &Account) {
        FlowNetMarketplace.faucet(recipient: attacker.address)
    }
}
