import "FlowNetMarketplace"

/// The node's owner takes a task addressed to the node. Only the node's
/// NodeOperator can: another account has none for this node.
transaction(task: UInt64) {
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
        self.operator!.claim(task: task)
    }
}
