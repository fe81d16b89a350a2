import "FlowNetMarketplace"

/// Pauses (false) or resumes (true) the signer's node.
transaction(active: Bool) {
    let operator: auth(FlowNetMarketplace.Operate) &FlowNetMarketplace.NodeOperator?
    let signer: Address

    prepare(signer: auth(BorrowValue) &Account) {
        self.operator = signer.storage.borrow<auth(FlowNetMarketplace.Operate) &FlowNetMarketplace.NodeOperator>(
            from: FlowNetMarketplace.NodeStoragePath
        )
        self.signer = signer.address
    }

    pre {
        self.operator != nil: "not found: node ".concat(self.signer.toString())
    }

    execute {
        self.operator!.setActive(active)
    }
}
