import "FungibleToken"
import "FlowNetToken"
import "FlowNetMarketplace"
import "FlowNetHostile"

/// Hostile setup (it succeeds): replaces the signer's published FLOWNET
/// receiver with a FlowNetHostile one, `kind` "reentrant" (re-enters fulfil of
/// `task` while it is paid) or "panicking" (refuses every payment). The
/// signer's real vault stays where it is.
transaction(kind: String, task: UInt64) {
    prepare(signer: auth(Storage, Capabilities) &Account) {
        FlowNetMarketplace.setupAccount(signer)
        let path = /storage/flownetHostileReceiver
        if let old <- signer.storage.load<@AnyResource>(from: path) {
            destroy old
        }
        if kind == "reentrant" {
            let operator = signer.capabilities.storage.issue<auth(FlowNetMarketplace.Operate) &FlowNetMarketplace.NodeOperator>(
                FlowNetMarketplace.NodeStoragePath
            )
            let vault = signer.capabilities.storage.issue<&FlowNetToken.Vault>(FlowNetToken.VaultStoragePath)
            signer.storage.save(<-FlowNetHostile.createReentrantReceiver(operator: operator, vault: vault, task: task), to: path)
        } else {
            signer.storage.save(<-FlowNetHostile.createPanickingReceiver(), to: path)
        }
        signer.capabilities.unpublish(FlowNetToken.ReceiverPublicPath)
        signer.capabilities.publish(
            signer.capabilities.storage.issue<&{FungibleToken.Receiver}>(path),
            at: FlowNetToken.ReceiverPublicPath
        )
    }
}
