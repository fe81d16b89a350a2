import "FlowNetMarketplace"

/// The ledger's configuration, totals, block time and height.
access(all) fun main(): FlowNetMarketplace.Info {
    return FlowNetMarketplace.getInfo()
}
