import "FungibleToken"
import "FlowNetToken"
import "FlowNetMarketplace"

/// Pays the node's listed price for `modelId` into escrow (at most
/// `maxPrice`) and opens a task. A metered offer escrows what `maxUnits`
/// output tokens cost, and the unused part comes back at fulfilment (a
/// per-task offer takes `maxUnits` 0). An input, if any, is named by its
/// SHA-256, size and a URL the node fetches it from. The task id is in the
/// TaskSubmitted event.
transaction(
    node: Address,
    modelId: String,
    prompt: String,
    params: String,
    maxPrice: UFix64,
    inputSha256: String?,
    inputSize: UInt64,
    inputUri: String?,
    maxUnits: UInt64
) {
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
            inputSha256: inputSha256,
            inputSize: inputSize,
            inputUri: inputUri,
            maxUnits: maxUnits,
            payment: self.payment
        )
    }
}
