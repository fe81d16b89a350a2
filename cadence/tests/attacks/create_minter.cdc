import "FlowNetToken"

/// Hostile: mint with a Minter of one's own. Only FlowNetToken can create a
/// Minter, so this transaction fails to type-check.
transaction {
    prepare(attacker: auth(BorrowValue) &Account) {
        let minter <- create FlowNetToken.Minter()
        let tokens <- minter.mintTokens(amount: 1000000.0)
        attacker.storage.borrow<&FlowNetToken.Vault>(from: FlowNetToken.VaultStoragePath)!.deposit(from: <-tokens)
        destroy minter
    }
}
