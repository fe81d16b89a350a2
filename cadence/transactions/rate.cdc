import "FlowNetToken"
import "FlowNetMarketplace"

/// Rates a fulfilled task 1 to 5 stars, once per account; the first three
/// raters within the bounty window share the task's rating bounty.
transaction(task: UInt64, stars: UInt8) {
    let member: auth(FlowNetMarketplace.Act) &FlowNetMarketplace.Member
    let vault: &FlowNetToken.Vault

    prepare(signer: auth(Storage, Capabilities) &Account) {
        FlowNetMarketplace.setupAccount(signer)
        self.member = signer.storage.borrow<auth(FlowNetMarketplace.Act) &FlowNetMarketplace.Member>(
            from: FlowNetMarketplace.MemberStoragePath
        )!
        self.vault = signer.storage.borrow<&FlowNetToken.Vault>(from: FlowNetToken.VaultStoragePath)!
    }

    execute {
        self.vault.deposit(from: <-self.member.rate(task: task, stars: stars))
    }
}
