import "NonFungibleToken"
import "FlowNetOutput"
import "FlowNetMarketplace"
import "FlowNetHostile"

/// Hostile setup (it succeeds): replaces the signer's published output
/// collection with a FlowNetHostile one, `kind` "reentrant" (re-enters fulfil
/// of `task` while the record is delivered) or "panicking" (refuses every
/// delivery, so that the node would never be paid).
transaction(kind: String, task: UInt64) {
    prepare(signer: auth(Storage, Capabilities) &Account) {
        FlowNetMarketplace.setupAccount(signer)
        let path = /storage/flownetHostileCollection
        if let old <- signer.storage.load<@AnyResource>(from: path) {
            destroy old
        }
        if kind == "reentrant" {
            let operator = signer.capabilities.storage.issue<auth(FlowNetMarketplace.Operate) &FlowNetMarketplace.NodeOperator>(
                FlowNetMarketplace.NodeStoragePath
            )
            signer.storage.save(<-FlowNetHostile.createReentrantCollection(operator: operator, task: task), to: path)
        } else {
            signer.storage.save(<-FlowNetHostile.createPanickingCollection(), to: path)
        }
        signer.capabilities.unpublish(FlowNetOutput.CollectionPublicPath)
        signer.capabilities.publish(
            signer.capabilities.storage.issue<&{NonFungibleToken.Receiver}>(path),
            at: FlowNetOutput.CollectionPublicPath
        )
    }
}
