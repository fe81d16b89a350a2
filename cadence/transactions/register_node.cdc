import "FlowNetMarketplace"

/// Registers the signer's node, or replaces its name, endpoint and offers
/// (its record and stats stay). Offers come as four parallel arrays: model
/// ids, weights SHA-256 (hex), prices and what each price is for (0 a task,
/// 1 a thousand output tokens).
transaction(name: String, endpoint: String, modelIds: [String], weights: [String], prices: [UFix64], units: [UInt8]) {
    prepare(signer: auth(Storage, Capabilities) &Account) {
        if modelIds.length != weights.length || modelIds.length != prices.length || modelIds.length != units.length {
            panic("invalid input: modelIds, weights, prices and units must have the same length")
        }
        let models: [FlowNetMarketplace.OfferedModel] = []
        var i = 0
        while i < modelIds.length {
            models.append(FlowNetMarketplace.OfferedModel(modelId: modelIds[i], weightsSha256: weights[i], price: prices[i], unit: units[i]))
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
