import "FlowNetMarketplace"

/// Anyone refunds a task whose claim or fulfil deadline has passed.
transaction(task: UInt64) {
    prepare(signer: &Account) {}

    execute {
        FlowNetMarketplace.expire(id: task)
    }
}
