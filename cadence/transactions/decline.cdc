import "FlowNetMarketplace"

/// The node's owner says the node cannot run a task addressed to it (an open or
/// claimed task, before its deadline), with a reason; the requester is refunded at
/// once. Only the node's NodeOperator can: another account has none for this node.
transaction(task: UInt64, reason: String) {
    let operator: auth(FlowNetMarketplace.Operate) &FlowNetMarketplace.NodeOperator?

    prepare(signer: auth(BorrowValue) &Account) {
        self.operator = signer.storage.borrow<auth(FlowNetMarketplace.Operate) &FlowNetMarketplace.NodeOperator>(
            from: FlowNetMarketplace.NodeStoragePath
        )
    }

    pre {
        FlowNetMarketplace.getTask(task) != nil: "not found: task ".concat(task.toString())
        self.operator != nil:
            "wrong node: task ".concat(task.toString()).concat(" is addressed to node ")
                .concat(FlowNetMarketplace.getTask(task)!.node.toString())
    }

    execute {
        self.operator!.decline(task: task, reason: reason)
    }
}
