import "FungibleToken"
import "NonFungibleToken"
import "FlowNetToken"
import "FlowNetMarketplace"

/// Hostile: what an ordinary account can deploy and publish where FlowNet pays
/// and delivers, trying to be paid twice or to refuse a delivery. The attack
/// suite (flownet-chain/tests/it/flow_attacks.rs) deploys it from an ordinary
/// account and proves that none of it gains or blocks anything: the
/// marketplace pays only into FlowNet's own vault type and delivers only into
/// FlowNet's own collection type, so none of these resources is ever called.
access(all) contract FlowNetHostile {
    /// Emitted each time one of these resources is called by anyone.
    access(all) event Called(kind: String, task: UInt64)

    /// While it is paid, fulfils its task once more through its owner's
    /// NodeOperator (the task is still claimed if the marketplace pays before
    /// it records the fulfilment), then keeps the tokens in the real vault.
    access(all) resource ReentrantReceiver: FungibleToken.Receiver {
        access(self) let operator: Capability<auth(FlowNetMarketplace.Operate) &FlowNetMarketplace.NodeOperator>
        access(self) let vault: Capability<&FlowNetToken.Vault>
        access(self) let task: UInt64
        access(self) var depth: UInt8

        access(all) fun deposit(from: @{FungibleToken.Vault}) {
            emit Called(kind: "reentrant-receiver", task: self.task)
            self.vault.borrow()!.deposit(from: <-from)
            if self.depth < 2 {
                self.depth = self.depth + 1
                self.operator.borrow()!.fulfil(
                    task: self.task,
                    sha256: "abababababababababababababababababababababababababababababababab",
                    uri: "http://reentered",
                    mime: "text/plain",
                    size: 1,
                    units: nil
                )
            }
        }

        access(all) view fun getSupportedVaultTypes(): {Type: Bool} {
            return {Type<@FlowNetToken.Vault>(): true}
        }

        access(all) view fun isSupportedVaultType(type: Type): Bool {
            return type == Type<@FlowNetToken.Vault>()
        }

        init(
            operator: Capability<auth(FlowNetMarketplace.Operate) &FlowNetMarketplace.NodeOperator>,
            vault: Capability<&FlowNetToken.Vault>,
            task: UInt64
        ) {
            self.operator = operator
            self.vault = vault
            self.task = task
            self.depth = 0
        }
    }

    /// Refuses every payment.
    access(all) resource PanickingReceiver: FungibleToken.Receiver {
        access(all) fun deposit(from: @{FungibleToken.Vault}) {
            emit Called(kind: "panicking-receiver", task: 0)
            panic("hostile: this receiver refuses every deposit")
        }

        access(all) view fun getSupportedVaultTypes(): {Type: Bool} {
            return {Type<@FlowNetToken.Vault>(): true}
        }

        access(all) view fun isSupportedVaultType(type: Type): Bool {
            return type == Type<@FlowNetToken.Vault>()
        }
    }

    /// While an output record is delivered to it, fulfils its task once more
    /// through its owner's NodeOperator (a node owner who submitted to its own
    /// node), and rates it; keeps the record.
    access(all) resource ReentrantCollection: NonFungibleToken.Receiver {
        access(self) let operator: Capability<auth(FlowNetMarketplace.Operate) &FlowNetMarketplace.NodeOperator>
        access(self) let task: UInt64
        access(self) var depth: UInt8
        access(self) let kept: @{UInt64: {NonFungibleToken.NFT}}

        access(all) fun deposit(token: @{NonFungibleToken.NFT}) {
            emit Called(kind: "reentrant-collection", task: self.task)
            let old <- self.kept[token.id] <- token
            destroy old
            if self.depth < 3 {
                self.depth = self.depth + 1
                self.operator.borrow()!.fulfil(
                    task: self.task,
                    sha256: "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd",
                    uri: "http://reentered",
                    mime: "text/plain",
                    size: 1,
                    units: nil
                )
            }
        }

        access(all) view fun getSupportedNFTTypes(): {Type: Bool} {
            return {}
        }

        access(all) view fun isSupportedNFTType(type: Type): Bool {
            return true
        }

        init(operator: Capability<auth(FlowNetMarketplace.Operate) &FlowNetMarketplace.NodeOperator>, task: UInt64) {
            self.operator = operator
            self.task = task
            self.depth = 0
            self.kept <- {}
        }
    }

    /// Refuses every delivery, so that the node's fulfilment would fail.
    access(all) resource PanickingCollection: NonFungibleToken.Receiver {
        access(all) fun deposit(token: @{NonFungibleToken.NFT}) {
            emit Called(kind: "panicking-collection", task: 0)
            panic("hostile: this collection refuses every deposit")
        }

        access(all) view fun getSupportedNFTTypes(): {Type: Bool} {
            return {}
        }

        access(all) view fun isSupportedNFTType(type: Type): Bool {
            return true
        }
    }

    access(all) fun createReentrantReceiver(
        operator: Capability<auth(FlowNetMarketplace.Operate) &FlowNetMarketplace.NodeOperator>,
        vault: Capability<&FlowNetToken.Vault>,
        task: UInt64
    ): @ReentrantReceiver {
        return <-create ReentrantReceiver(operator: operator, vault: vault, task: task)
    }

    access(all) fun createPanickingReceiver(): @PanickingReceiver {
        return <-create PanickingReceiver()
    }

    access(all) fun createReentrantCollection(
        operator: Capability<auth(FlowNetMarketplace.Operate) &FlowNetMarketplace.NodeOperator>,
        task: UInt64
    ): @ReentrantCollection {
        return <-create ReentrantCollection(operator: operator, task: task)
    }

    access(all) fun createPanickingCollection(): @PanickingCollection {
        return <-create PanickingCollection()
    }
}
