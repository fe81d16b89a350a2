import "FungibleToken"
import "FlowNetToken"
import "FlowNetMarketplace"

/// The requester takes back an unclaimed task's escrow.
transaction(task: UInt64) {
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
        self.vault.deposit(from: <-self.member.cancel(task: task))
    }
}
