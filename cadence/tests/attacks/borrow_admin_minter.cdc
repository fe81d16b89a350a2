import "FlowNetToken"

/// Hostile: reach the admin's Minter. It sits in the admin's storage with no
/// capability published, so there is nothing to borrow.
transaction(admin: Address) {
    prepare(attacker: auth(BorrowValue) &Account) {
        let account = getAccount(admin)
        let minter = account.capabilities.borrow<&FlowNetToken.Minter>(/public/flowNetTokenMinter)
            ?? account.capabilities.borrow<&FlowNetToken.Minter>(/public/flowNetTokenVault)
            ?? panic("attack failed: no capability to the admin's Minter")
        attacker.storage.borrow<&FlowNetToken.Vault>(from: FlowNetToken.VaultStoragePath)!
            .deposit(from: <-minter.mintTokens(amount: 1000000.0))
    }
}
