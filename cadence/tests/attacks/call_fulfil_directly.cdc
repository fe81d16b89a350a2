import "FlowNetMarketplace"

/// Hostile: claim and fulfil the victim node's task by calling the
/// marketplace's rule functions with the victim's address. They are
/// access(contract): only a NodeOperator reaches them.
transaction(victim: Address, task: UInt64) {
    prepare(attacker: &Account) {
        FlowNetMarketplace.claim(node: victim, id: task)
        FlowNetMarketplace.fulfil(
            node: victim,
            id: task,
            result: FlowNetMarketplace.OutputRef(sha256: "0000000000000000000000000000000000000000000000000000000000000000", uri: "http://forged", mime: "image/png", size: 1),
            units: nil
        )
    }
}
