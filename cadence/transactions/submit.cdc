import "FungibleToken"
import "FlowNetToken"
import "FlowNetMarketplace"

/// Pays the node's listed price for `modelId` into escrow (at most
/// `maxPrice`) and opens a task. The task id is in the TaskSubmitted event.
transaction(node: Address, modelId: String, prompt: String, params: String, maxPrice: UFix64) {
    let member: auth(FlowNetMarketplace.Act) &FlowNetMarketplace.Member
    let payment: auth(FungibleToken.Withdraw) &FlowNetToken.Vault

    prepare(signer: auth(Storage, Capabilities) &Account) {
        FlowNetMarketplace.setupAccount(signer)
        self.member = signer.storage.borrow<auth(FlowNetMarketplace.Act) &FlowNetMarketplace.Member>(
            from: FlowNetMarketplace.MemberStoragePath
        )!
        self.payment = signer.storage.borrow<auth(FungibleToken.Withdraw) &FlowNetToken.Vault>(
            from: FlowNetToken.VaultStoragePath
        )!
    }

    execute {
        self.member.submit(
            node: node,
            modelId: modelId,
            prompt: prompt,
            params: params,
            maxPrice: maxPrice,
            payment: self.payment
        )
    }
}
