import "FlowNetMarketplace"

/// The test-network faucet: the user (first authorizer) receives the welcome
/// amount once; the sponsor (second authorizer, usually also the payer)
/// holds the `Sponsor` resource that grants it. There is no other mint.
transaction {
    let sponsor: auth(FlowNetMarketplace.Grant) &FlowNetMarketplace.Sponsor
    let recipient: Address

    prepare(user: auth(Storage, Capabilities) &Account, sponsor: auth(BorrowValue) &Account) {
        FlowNetMarketplace.setupAccount(user)
        self.recipient = user.address
        self.sponsor = sponsor.storage.borrow<auth(FlowNetMarketplace.Grant) &FlowNetMarketplace.Sponsor>(
            from: FlowNetMarketplace.SponsorStoragePath
        ) ?? panic("not allowed: the second authorizer holds no FlowNet sponsor")
    }

    execute {
        self.sponsor.faucet(recipient: self.recipient)
    }
}
