import "FlowNetMarketplace"

/// What an account holds on FlowNet: FLOWNET balance, faucet use, setup.
access(all) fun main(address: Address): FlowNetMarketplace.AccountInfo {
    return FlowNetMarketplace.getAccountInfo(address)
}
