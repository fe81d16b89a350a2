import "FlowNetToken"

/// An account's FLOWNET balance (0.0 without a vault).
access(all) fun main(address: Address): UFix64 {
    return getAccount(address).capabilities.borrow<&FlowNetToken.Vault>(FlowNetToken.VaultPublicPath)?.balance ?? 0.0
}
