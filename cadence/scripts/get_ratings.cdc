import "FlowNetMarketplace"

/// A task's ratings in the order they were given.
access(all) fun main(task: UInt64): [FlowNetMarketplace.RatingInfo] {
    return FlowNetMarketplace.getRatings(task)
}
