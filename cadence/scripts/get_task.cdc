import "FlowNetMarketplace"

access(all) fun main(id: UInt64): FlowNetMarketplace.TaskInfo? {
    return FlowNetMarketplace.getTask(id)
}
