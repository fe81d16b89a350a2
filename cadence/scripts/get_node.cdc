import "FlowNetMarketplace"

access(all) fun main(owner: Address): FlowNetMarketplace.NodeInfo? {
    return FlowNetMarketplace.getNode(owner)
}
