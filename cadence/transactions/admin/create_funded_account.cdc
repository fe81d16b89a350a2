import "FungibleToken"
import "FlowToken"

/// Creates an account for an ECDSA P-256 / SHA3-256 public key (hex X‖Y)
/// and funds it with `flow` FLOW from the funder: how an emulator or testnet
/// account becomes FlowNet's admin before the contracts are deployed to it.
transaction(publicKey: String, flow: UFix64) {
    prepare(funder: auth(BorrowValue) &Account) {
        let account = Account(payer: funder)
        account.keys.add(
            publicKey: PublicKey(publicKey: publicKey.decodeHex(), signatureAlgorithm: SignatureAlgorithm.ECDSA_P256),
            hashAlgorithm: HashAlgorithm.SHA3_256,
            weight: 1000.0
        )
        let vault = funder.storage.borrow<auth(FungibleToken.Withdraw) &FlowToken.Vault>(from: /storage/flowTokenVault)
            ?? panic("not found: the funder has no FLOW vault")
        let receiver = account.capabilities.borrow<&{FungibleToken.Receiver}>(/public/flowTokenReceiver)
            ?? panic("not found: the new account has no FLOW receiver")
        receiver.deposit(from: <-vault.withdraw(amount: flow))
    }
}
