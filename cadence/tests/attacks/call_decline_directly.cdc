import "FlowNetMarketplace"

/// Hostile: decline the victim node's task (refunding it and counting a decline
/// against the node) by calling the marketplace's rule function with the victim's
/// address. It is access(contract): only the node's NodeOperator reaches it.
transaction(victim: Address, task: UInt64) {
    prepare(attacker: &Account) {
        FlowNetMarketplace.decline(node: victim, id: task, reason: "forged")
    }
}
