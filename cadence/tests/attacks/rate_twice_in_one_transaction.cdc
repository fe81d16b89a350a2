import "FlowNetToken"
import "FlowNetMarketplace"

/// Hostile: rate the same task twice in one transaction to collect two bounty
/// shares. The second rating is refused, which reverts the whole transaction.
transaction(task: UInt64) {
    prepare(attacker: auth(BorrowValue) &Account) {
        let member = attacker.storage.borrow<auth(FlowNetMarketplace.Act) &FlowNetMarketplace.Member>(from: FlowNetMarketplace.MemberStoragePath)!
        let vault = attacker.storage.borrow<&FlowNetToken.Vault>(from: FlowNetToken.VaultStoragePath)!
        vault.deposit(from: <-member.rate(task: task, stars: 5))
        vault.deposit(from: <-member.rate(task: task, stars: 5))
    }
}
