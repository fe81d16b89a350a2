import "FungibleToken"
import "FlowNetToken"
import "FlowNetMarketplace"

/// Sends FLOWNET to another FlowNet account (one with a FLOWNET receiver).
transaction(to: Address, amount: UFix64) {
    let vault: auth(FungibleToken.Withdraw) &FlowNetToken.Vault?
    let from: Address

    prepare(signer: auth(BorrowValue) &Account) {
        self.vault = signer.storage.borrow<auth(FungibleToken.Withdraw) &FlowNetToken.Vault>(
            from: FlowNetToken.VaultStoragePath
        )
        self.from = signer.address
    }

    pre {
        amount > 0.0: "invalid input: transfer amount must be positive"
        self.vault != nil: "not found: account ".concat(self.from.toString())
        FlowNetMarketplace.receiver(to) != nil: "not found: account ".concat(to.toString())
        self.vault!.balance >= amount:
            "insufficient funds: ".concat(FlowNetMarketplace.formatAmount(amount))
                .concat(" FLOWNET needed, ").concat(FlowNetMarketplace.formatAmount(self.vault!.balance))
                .concat(" FLOWNET available")
    }

    execute {
        if self.from != to {
            FlowNetMarketplace.receiver(to)!.deposit(from: <-self.vault!.withdraw(amount: amount))
        }
    }
}
