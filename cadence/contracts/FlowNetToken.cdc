import "FungibleToken"
import "MetadataViews"
import "FungibleTokenMetadataViews"

/// FLOWNET, the marketplace's token: a FungibleToken v2 vault with the
/// FungibleTokenMetadataViews views.
///
/// There is no public mint. The only `Minter` is created when the contract is
/// deployed and saved in the deploying account's storage, with no capability
/// published: only that account (the admin) can mint, and the marketplace
/// contract on the same account uses it for the faucet, once per account.
access(all) contract FlowNetToken: FungibleToken {

    /// Tokens in existence: the faucet's grants, less anything burned.
    access(all) var totalSupply: UFix64

    access(all) let VaultStoragePath: StoragePath
    /// `&FlowNetToken.Vault` without entitlements: balance, deposit and views.
    access(all) let VaultPublicPath: PublicPath
    /// `&{FungibleToken.Receiver}`: where others send tokens.
    access(all) let ReceiverPublicPath: PublicPath
    access(all) let MinterStoragePath: StoragePath

    access(all) event TokensMinted(amount: UFix64, type: String)

    access(all) view fun getContractViews(resourceType: Type?): [Type] {
        return [
            Type<FungibleTokenMetadataViews.FTView>(),
            Type<FungibleTokenMetadataViews.FTDisplay>(),
            Type<FungibleTokenMetadataViews.FTVaultData>(),
            Type<FungibleTokenMetadataViews.TotalSupply>()
        ]
    }

    access(all) fun resolveContractView(resourceType: Type?, viewType: Type): AnyStruct? {
        switch viewType {
            case Type<FungibleTokenMetadataViews.FTView>():
                return FungibleTokenMetadataViews.FTView(
                    ftDisplay: self.resolveContractView(
                        resourceType: nil,
                        viewType: Type<FungibleTokenMetadataViews.FTDisplay>()
                    ) as! FungibleTokenMetadataViews.FTDisplay?,
                    ftVaultData: self.resolveContractView(
                        resourceType: nil,
                        viewType: Type<FungibleTokenMetadataViews.FTVaultData>()
                    ) as! FungibleTokenMetadataViews.FTVaultData?
                )
            case Type<FungibleTokenMetadataViews.FTDisplay>():
                let logo = MetadataViews.Media(
                    file: MetadataViews.HTTPFile(url: "https://flownet.dev/logo.svg"),
                    mediaType: "image/svg+xml"
                )
                return FungibleTokenMetadataViews.FTDisplay(
                    name: "FlowNet Token",
                    symbol: "FLOWNET",
                    description: "Pays for AI inference on the FlowNet marketplace: escrowed at submit, split 90/2.5/7.5 between the node, the treasury and the first raters.",
                    externalURL: MetadataViews.ExternalURL("https://flownet.dev"),
                    logos: MetadataViews.Medias([logo]),
                    socials: {}
                )
            case Type<FungibleTokenMetadataViews.FTVaultData>():
                return FungibleTokenMetadataViews.FTVaultData(
                    storagePath: self.VaultStoragePath,
                    receiverPath: self.ReceiverPublicPath,
                    metadataPath: self.VaultPublicPath,
                    receiverLinkedType: Type<&FlowNetToken.Vault>(),
                    metadataLinkedType: Type<&FlowNetToken.Vault>(),
                    createEmptyVaultFunction: (fun(): @{FungibleToken.Vault} {
                        return <-FlowNetToken.createEmptyVault(vaultType: Type<@FlowNetToken.Vault>())
                    })
                )
            case Type<FungibleTokenMetadataViews.TotalSupply>():
                return FungibleTokenMetadataViews.TotalSupply(totalSupply: FlowNetToken.totalSupply)
        }
        return nil
    }

    access(all) resource Vault: FungibleToken.Vault {

        access(all) var balance: UFix64

        access(all) event ResourceDestroyed(uuid: UInt64 = self.uuid, balance: UFix64 = self.balance)

        init(balance: UFix64) {
            self.balance = balance
        }

        /// Burning takes the tokens out of the supply.
        access(contract) fun burnCallback() {
            if self.balance > 0.0 {
                FlowNetToken.totalSupply = FlowNetToken.totalSupply - self.balance
            }
            self.balance = 0.0
        }

        access(all) view fun getViews(): [Type] {
            return FlowNetToken.getContractViews(resourceType: nil)
        }

        access(all) fun resolveView(_ view: Type): AnyStruct? {
            return FlowNetToken.resolveContractView(resourceType: nil, viewType: view)
        }

        access(all) view fun getSupportedVaultTypes(): {Type: Bool} {
            return {self.getType(): true}
        }

        access(all) view fun isSupportedVaultType(type: Type): Bool {
            return type == self.getType()
        }

        access(all) view fun isAvailableToWithdraw(amount: UFix64): Bool {
            return amount <= self.balance
        }

        access(FungibleToken.Withdraw) fun withdraw(amount: UFix64): @FlowNetToken.Vault {
            self.balance = self.balance - amount
            return <-create Vault(balance: amount)
        }

        access(all) fun deposit(from: @{FungibleToken.Vault}) {
            let vault <- from as! @FlowNetToken.Vault
            self.balance = self.balance + vault.balance
            vault.balance = 0.0
            destroy vault
        }

        access(all) fun createEmptyVault(): @FlowNetToken.Vault {
            return <-create Vault(balance: 0.0)
        }
    }

    access(all) fun createEmptyVault(vaultType: Type): @FlowNetToken.Vault {
        return <-create Vault(balance: 0.0)
    }

    /// Mints new tokens. Exactly one exists, in the admin's storage.
    access(all) resource Minter {
        access(all) fun mintTokens(amount: UFix64): @FlowNetToken.Vault {
            FlowNetToken.totalSupply = FlowNetToken.totalSupply + amount
            emit TokensMinted(amount: amount, type: Type<@FlowNetToken.Vault>().identifier)
            return <-create Vault(balance: amount)
        }
    }

    init() {
        self.totalSupply = 0.0
        self.VaultStoragePath = /storage/flowNetTokenVault
        self.VaultPublicPath = /public/flowNetTokenVault
        self.ReceiverPublicPath = /public/flowNetTokenReceiver
        self.MinterStoragePath = /storage/flowNetTokenMinter

        self.account.storage.save(<-create Vault(balance: 0.0), to: self.VaultStoragePath)
        let vaultCap = self.account.capabilities.storage.issue<&FlowNetToken.Vault>(self.VaultStoragePath)
        self.account.capabilities.publish(vaultCap, at: self.VaultPublicPath)
        let receiverCap = self.account.capabilities.storage.issue<&FlowNetToken.Vault>(self.VaultStoragePath)
        self.account.capabilities.publish(receiverCap, at: self.ReceiverPublicPath)

        self.account.storage.save(<-create Minter(), to: self.MinterStoragePath)
    }
}
