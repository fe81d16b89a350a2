import "FlowNetMarketplace"

/// Every registered node, in registration order (clients rank them).
access(all) fun main(): [FlowNetMarketplace.NodeInfo] {
    let out: [FlowNetMarketplace.NodeInfo] = []
    for owner in FlowNetMarketplace.getNodeOwners() {
        out.append(FlowNetMarketplace.getNode(owner)!)
    }
    return out
}
