import "NonFungibleToken"
import "FlowNetOutput"
import "FlowNetMarketplace"

/// Moves the signer's outputs that the marketplace kept (no collection or no
/// storage room when they were minted) into the signer's collection, and pays
/// the signer the metered refunds it was owed (no FlowNet vault at the time).
transaction {
    prepare(signer: auth(Storage, Capabilities) &Account) {
        FlowNetMarketplace.setupAccount(signer)
        let member = signer.storage.borrow<auth(FlowNetMarketplace.Act) &FlowNetMarketplace.Member>(
            from: FlowNetMarketplace.MemberStoragePath
        )!
        let collection = signer.storage.borrow<&FlowNetOutput.Collection>(from: FlowNetOutput.CollectionStoragePath)!
        FlowNetMarketplace.collectOutputs(member: member, into: collection)
        FlowNetMarketplace.collectRefunds(member: member)
    }
}
