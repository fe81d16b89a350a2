import "FlowNetMarketplace"

/// The node delivers a claimed task's output (content-addressed by its
/// SHA-256) and is paid; the requester receives the output NFT. A metered
/// task states the `units` (output tokens) it bills; a per-task one nil.
transaction(task: UInt64, sha256: String, uri: String, mime: String, size: UInt64, units: UInt64?) {
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
        self.operator!.fulfil(task: task, sha256: sha256, uri: uri, mime: mime, size: size, units: units)
    }
}
