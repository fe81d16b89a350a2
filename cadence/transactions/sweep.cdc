import "FlowNetMarketplace"

/// Anyone moves a task's unclaimed rating bounty to the treasury once the
/// bounty window has passed.
transaction(task: UInt64) {
    prepare(signer: &Account) {}

    execute {
        FlowNetMarketplace.sweep(id: task)
    }
}
