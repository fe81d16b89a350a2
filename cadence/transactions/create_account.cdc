import "FungibleToken"
import "FlowToken"
import "FlowNetMarketplace"

/// The sponsor creates an account for an ECDSA P-256 / SHA3-256 public key
/// (64 bytes X‖Y, hex), sets it up for FlowNet and funds its storage with
/// `initialFlow` FLOW from the sponsor's vault. The new address is in the
/// `flow.AccountCreated` event.
transaction(publicKey: String, initialFlow: UFix64) {
    prepare(sponsor: auth(BorrowValue) &Account) {
        let key = PublicKey(
            publicKey: publicKey.decodeHex(),
            signatureAlgorithm: SignatureAlgorithm.ECDSA_P256
        )
        let account = Account(payer: sponsor)
        account.keys.add(publicKey: key, hashAlgorithm: HashAlgorithm.SHA3_256, weight: 1000.0)
        FlowNetMarketplace.setupAccount(account)
        if initialFlow > 0.0 {
            let flow = sponsor.storage.borrow<auth(FungibleToken.Withdraw) &FlowToken.Vault>(from: /storage/flowTokenVault)
                ?? panic("not found: the sponsor has no FLOW vault")
            let receiver = account.capabilities.borrow<&{FungibleToken.Receiver}>(/public/flowTokenReceiver)
                ?? panic("not found: the new account has no FLOW receiver")
            receiver.deposit(from: <-flow.withdraw(amount: initialFlow))
        }
    }
}
