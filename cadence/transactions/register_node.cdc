import "FlowNetMarketplace"

/// Registers the signer's node, or replaces its name, endpoint and offers
/// (its record and stats stay). Offers come as three parallel arrays: model
/// ids, weights SHA-256 (hex) and prices.
transaction(name: String, endpoint: String, modelIds: [String], weights: [String], prices: [UFix64]) {
    prepare(signer: auth(Storage, Capabilities) &Account) {
        if modelIds.length != weights.length || modelIds.length != prices.length {
            panic("invalid input: modelIds, weights and prices must have the same length")
        }
        let models: [FlowNetMarketplace.OfferedModel] = []
        var i = 0
        while i < modelIds.length {
            models.append(FlowNetMarketplace.OfferedModel(modelId: modelIds[i], weightsSha256: weights[i], price: prices[i]))
            i = i + 1
        }
        FlowNetMarketplace.setupAccount(signer)
        if let operator = signer.storage.borrow<auth(FlowNetMarketplace.Operate) &FlowNetMarketplace.NodeOperator>(
            from: FlowNetMarketplace.NodeStoragePath
        ) {
            operator.update(name: name, endpoint: endpoint, models: models)
        } else {
            let member = signer.storage.borrow<auth(FlowNetMarketplace.Act) &FlowNetMarketplace.Member>(
                from: FlowNetMarketplace.MemberStoragePath
            )!
            signer.storage.save(
                <-member.registerNode(name: name, endpoint: endpoint, models: models),
                to: FlowNetMarketplace.NodeStoragePath
            )
        }
    }
}
