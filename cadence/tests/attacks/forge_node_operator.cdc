import "FlowNetMarketplace"

/// Hostile: forge the victim node's operator to take its task and payment.
/// Only the marketplace creates NodeOperators, one per registered node.
transaction(victim: Address, task: UInt64) {
    prepare(attacker: &Account) {
        let operator <- create FlowNetMarketplace.NodeOperator(node: victim)
        operator.claim(task: task)
        operator.fulfil(task: task, sha256: "0000000000000000000000000000000000000000000000000000000000000000", uri: "http://forged", mime: "image/png", size: 1, units: nil)
        destroy operator
    }
}
