import "FungibleToken"
import "FlowToken"
import "FlowNetMarketplace"

/// The sponsor creates an account for an ECDSA P-256 public key (64 bytes
/// X‖Y, hex) that signs with `hashAlgorithm` (1 = SHA2-256, as WebCrypto keys
/// do; 3 = SHA3-256), sets it up for FlowNet and funds its storage with
/// `initialFlow` FLOW from the sponsor's vault. The new address is in the
/// `flow.AccountCreated` event.
transaction(publicKey: String, hashAlgorithm: UInt8, initialFlow: UFix64) {
    prepare(sponsor: auth(BorrowValue) &Account) {
        let key = PublicKey(
            publicKey: publicKey.decodeHex(),
            signatureAlgorithm: SignatureAlgorithm.ECDSA_P256
        )
        // Compared by raw value: the emulator's Cadence finds two equal built-in
        // enum cases unequal with `!=`.
        if hashAlgorithm != HashAlgorithm.SHA2_256.rawValue && hashAlgorithm != HashAlgorithm.SHA3_256.rawValue {
            panic("invalid input: account keys sign with SHA2-256 or SHA3-256")
        }
        let hash = HashAlgorithm(rawValue: hashAlgorithm)!
        let account = Account(payer: sponsor)
        account.keys.add(publicKey: key, hashAlgorithm: hash, weight: 1000.0)
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
