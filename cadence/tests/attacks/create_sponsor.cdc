import "FlowNetMarketplace"

/// Hostile: a Sponsor of one's own would grant the faucet at will. Only the
/// marketplace contract can create one.
transaction {
    prepare(attacker: auth(Storage) &Account) {
        let sponsor <- create FlowNetMarketplace.Sponsor()
        sponsor.faucet(recipient: attacker.address)
        attacker.storage.save(<-sponsor, to: /storage/mySponsor)
    }
}
