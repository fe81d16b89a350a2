import "FlowNetOutput"

/// Hostile: mint an output NFT without fulfilling a task. Minting is
/// access(account): only the marketplace on the admin account can.
transaction {
    prepare(attacker: auth(BorrowValue) &Account) {
        let nft <- FlowNetOutput.mint(
            task: 1,
            prompt: "forged",
            modelId: "m",
            weightsSha256: "00",
            params: "{}",
            outputSha256: "00",
            outputUri: "http://forged",
            outputMime: "image/png",
            outputSize: 1,
            inputSha256: nil,
            inputSize: nil,
            inputUri: nil,
            units: nil,
            node: attacker.address,
            requester: attacker.address,
            mintedAt: 0
        )
        attacker.storage.borrow<&FlowNetOutput.Collection>(from: FlowNetOutput.CollectionStoragePath)!.deposit(token: <-nft)
    }
}
