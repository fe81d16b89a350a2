import "FlowNetOutput"
import "FlowNetMarketplace"

/// The outputs an account owns, in id order, including those the
/// marketplace keeps for it until it collects them.
access(all) fun main(owner: Address): [FlowNetOutput.OutputRecord] {
    let out: [FlowNetOutput.OutputRecord] = []
    var ids: [UInt64] = []
    if let collection = getAccount(owner).capabilities.borrow<&FlowNetOutput.Collection>(FlowNetOutput.CollectionPublicPath) {
        ids = collection.getIDs()
        for id in ids {
            out.append(FlowNetOutput.OutputRecord(nft: collection.borrowOutput(id)!))
        }
    }
    for id in FlowNetMarketplace.getAccountInfo(owner).pendingOutputs {
        out.append(FlowNetOutput.OutputRecord(nft: FlowNetMarketplace.getPendingOutput(id)!))
    }
    return out
}
