import "FlowNetMarketplace"

/// Hostile: use the victim node's operator through its account. The operator
/// stays in the victim's storage with no capability published, and an
/// Operate reference cannot come from a public path anyway.
transaction(victim: Address, task: UInt64) {
    prepare(attacker: &Account) {
        let operator = getAccount(victim).capabilities.borrow<auth(FlowNetMarketplace.Operate) &FlowNetMarketplace.NodeOperator>(/public/flowNetNodeOperator)
            ?? panic("attack failed: the victim's NodeOperator is not reachable")
        operator.claim(task: task)
    }
}
