import "NonFungibleToken"
import "MetadataViews"
import "ViewResolver"

/// The record of one inference, owned by the requester who paid for it: the
/// prompt, which model and weights (by SHA-256) ran with which params, and the
/// output's SHA-256 and URI. A NonFungibleToken v2 with the MetadataViews
/// Display, Serial, Traits, ExternalURL, NFTCollectionData and
/// NFTCollectionDisplay views.
///
/// Minting is `access(account)`: only FlowNetMarketplace, deployed on the same
/// account, mints, and only when a node fulfils a task.
access(all) contract FlowNetOutput: NonFungibleToken {

    /// Outputs minted so far; also the last id.
    access(all) var totalSupply: UInt64

    access(all) let CollectionStoragePath: StoragePath
    access(all) let CollectionPublicPath: PublicPath

    access(all) event Minted(id: UInt64, task: UInt64, requester: Address, node: Address, outputSha256: String)

    /// An output's fields as a plain value, for scripts.
    access(all) struct OutputRecord {
        access(all) let id: UInt64
        access(all) let owner: Address?
        access(all) let task: UInt64
        access(all) let prompt: String
        access(all) let modelId: String
        access(all) let weightsSha256: String
        access(all) let params: String
        access(all) let outputSha256: String
        access(all) let outputUri: String
        access(all) let outputMime: String
        access(all) let outputSize: UInt64
        access(all) let inputSha256: String?
        access(all) let inputSize: UInt64?
        access(all) let inputUri: String?
        access(all) let units: UInt64?
        access(all) let node: Address
        access(all) let requester: Address
        access(all) let mintedAt: UInt64

        view init(nft: &NFT) {
            self.id = nft.id
            self.owner = nft.owner?.address
            self.task = nft.task
            self.prompt = nft.prompt
            self.modelId = nft.modelId
            self.weightsSha256 = nft.weightsSha256
            self.params = nft.params
            self.outputSha256 = nft.outputSha256
            self.outputUri = nft.outputUri
            self.outputMime = nft.outputMime
            self.outputSize = nft.outputSize
            self.inputSha256 = nft.inputSha256
            self.inputSize = nft.inputSize
            self.inputUri = nft.inputUri
            self.units = nft.units
            self.node = nft.node
            self.requester = nft.requester
            self.mintedAt = nft.mintedAt
        }
    }

    access(all) resource NFT: NonFungibleToken.NFT {
        access(all) let id: UInt64
        access(all) let task: UInt64
        access(all) let prompt: String
        access(all) let modelId: String
        /// Hex SHA-256 of the weights the node published for the model.
        access(all) let weightsSha256: String
        /// The params JSON object, as submitted.
        access(all) let params: String
        access(all) let outputSha256: String
        access(all) let outputUri: String
        access(all) let outputMime: String
        access(all) let outputSize: UInt64
        /// The task's input blob (a conversation, an image), by hex SHA-256, size
        /// and where its requester kept it; nil for a task without one.
        access(all) let inputSha256: String?
        access(all) let inputSize: UInt64?
        access(all) let inputUri: String?
        /// The units (output tokens) the requester paid for, for a metered task.
        access(all) let units: UInt64?
        access(all) let node: Address
        access(all) let requester: Address
        /// Block timestamp of the fulfilment, in whole seconds.
        access(all) let mintedAt: UInt64

        init(
            id: UInt64,
            task: UInt64,
            prompt: String,
            modelId: String,
            weightsSha256: String,
            params: String,
            outputSha256: String,
            outputUri: String,
            outputMime: String,
            outputSize: UInt64,
            inputSha256: String?,
            inputSize: UInt64?,
            inputUri: String?,
            units: UInt64?,
            node: Address,
            requester: Address,
            mintedAt: UInt64
        ) {
            self.id = id
            self.task = task
            self.prompt = prompt
            self.modelId = modelId
            self.weightsSha256 = weightsSha256
            self.params = params
            self.outputSha256 = outputSha256
            self.outputUri = outputUri
            self.outputMime = outputMime
            self.outputSize = outputSize
            self.inputSha256 = inputSha256
            self.inputSize = inputSize
            self.inputUri = inputUri
            self.units = units
            self.node = node
            self.requester = requester
            self.mintedAt = mintedAt
        }

        access(all) fun createEmptyCollection(): @{NonFungibleToken.Collection} {
            return <-FlowNetOutput.createEmptyCollection(nftType: Type<@FlowNetOutput.NFT>())
        }

        /// The output on IPFS (`ipfs://<cid>`, as wallets expect) when it is one block,
        /// else where its node serves it.
        access(all) view fun thumbnail(): {MetadataViews.File} {
            if let cid = FlowNetOutput.ipfsCid(sha256: self.outputSha256, size: self.outputSize) {
                return MetadataViews.IPFSFile(cid: cid, path: nil)
            }
            return MetadataViews.HTTPFile(url: self.outputUri)
        }

        access(all) view fun getViews(): [Type] {
            return [
                Type<MetadataViews.Display>(),
                Type<MetadataViews.Serial>(),
                Type<MetadataViews.Traits>(),
                Type<MetadataViews.ExternalURL>(),
                Type<MetadataViews.NFTCollectionData>(),
                Type<MetadataViews.NFTCollectionDisplay>()
            ]
        }

        access(all) fun resolveView(_ view: Type): AnyStruct? {
            switch view {
                case Type<MetadataViews.Display>():
                    return MetadataViews.Display(
                        name: "FlowNet output #".concat(self.id.toString()),
                        description: self.modelId.concat(": ").concat(self.prompt),
                        thumbnail: self.thumbnail()
                    )
                case Type<MetadataViews.Serial>():
                    return MetadataViews.Serial(self.id)
                case Type<MetadataViews.Traits>():
                    let traits = [
                        MetadataViews.Trait(name: "prompt", value: self.prompt, displayType: "String", rarity: nil),
                        MetadataViews.Trait(name: "model_id", value: self.modelId, displayType: "String", rarity: nil),
                        MetadataViews.Trait(name: "weights_sha256", value: self.weightsSha256, displayType: "String", rarity: nil),
                        MetadataViews.Trait(name: "params", value: self.params, displayType: "String", rarity: nil),
                        MetadataViews.Trait(name: "output_sha256", value: self.outputSha256, displayType: "String", rarity: nil),
                        MetadataViews.Trait(name: "output_uri", value: self.outputUri, displayType: "String", rarity: nil),
                        MetadataViews.Trait(name: "output_mime", value: self.outputMime, displayType: "String", rarity: nil),
                        MetadataViews.Trait(name: "output_cid", value: FlowNetOutput.ipfsCid(sha256: self.outputSha256, size: self.outputSize), displayType: "String", rarity: nil),
                        MetadataViews.Trait(name: "node", value: self.node, displayType: "Address", rarity: nil),
                        MetadataViews.Trait(name: "requester", value: self.requester, displayType: "Address", rarity: nil),
                        MetadataViews.Trait(name: "task", value: self.task, displayType: "Number", rarity: nil),
                        MetadataViews.Trait(name: "minted_at", value: self.mintedAt, displayType: "Date", rarity: nil)
                    ]
                    if let sha = self.inputSha256 {
                        traits.append(MetadataViews.Trait(name: "input_sha256", value: sha, displayType: "String", rarity: nil))
                    }
                    if let units = self.units {
                        traits.append(MetadataViews.Trait(name: "units", value: units, displayType: "Number", rarity: nil))
                    }
                    return MetadataViews.Traits(traits)
                case Type<MetadataViews.ExternalURL>():
                    return MetadataViews.ExternalURL(self.outputUri)
            }
            return FlowNetOutput.resolveContractView(resourceType: Type<@FlowNetOutput.NFT>(), viewType: view)
        }
    }

    /// The IPFS CID of a blob of `size` bytes with this SHA-256 (hex): a CIDv1 of the
    /// raw codec whose multihash is that SHA-256, in base32 (`bafkrei…`), for blobs of
    /// one IPFS block (1 MiB); nil for larger ones. The same rule as flownet-core's
    /// `cid::cid_of`.
    access(all) view fun ipfsCid(sha256: String, size: UInt64): String? {
        if size > 1048576 || sha256.length != 64 {
            return nil
        }
        let bytes: [UInt8] = [0x01, 0x55, 0x12, 0x20].concat(sha256.decodeHex())
        let alphabet = "abcdefghijklmnopqrstuvwxyz234567"
        var out = "b"
        var acc: UInt32 = 0
        var bits: UInt32 = 0
        for b in bytes {
            acc = ((acc << 8) | UInt32(b)) & 0xFFFF
            bits = bits + 8
            while bits >= 5 {
                bits = bits - 5
                let i = Int((acc >> bits) & 31)
                out = out.concat(alphabet.slice(from: i, upTo: i + 1))
            }
        }
        if bits > 0 {
            let i = Int((acc << (5 - bits)) & 31)
            out = out.concat(alphabet.slice(from: i, upTo: i + 1))
        }
        return out
    }

    access(all) resource Collection: NonFungibleToken.Collection {
        access(all) var ownedNFTs: @{UInt64: {NonFungibleToken.NFT}}

        init() {
            self.ownedNFTs <- {}
        }

        access(all) view fun getSupportedNFTTypes(): {Type: Bool} {
            return {Type<@FlowNetOutput.NFT>(): true}
        }

        access(all) view fun isSupportedNFTType(type: Type): Bool {
            return type == Type<@FlowNetOutput.NFT>()
        }

        access(NonFungibleToken.Withdraw) fun withdraw(withdrawID: UInt64): @{NonFungibleToken.NFT} {
            let token <- self.ownedNFTs.remove(key: withdrawID)
                ?? panic("not found: nft ".concat(withdrawID.toString()).concat(" is not in this collection"))
            return <-token
        }

        access(all) fun deposit(token: @{NonFungibleToken.NFT}) {
            let nft <- token as! @FlowNetOutput.NFT
            let old <- self.ownedNFTs[nft.id] <- nft
            destroy old
        }

        access(all) view fun getIDs(): [UInt64] {
            return self.ownedNFTs.keys
        }

        access(all) view fun getLength(): Int {
            return self.ownedNFTs.length
        }

        access(all) view fun borrowNFT(_ id: UInt64): &{NonFungibleToken.NFT}? {
            return &self.ownedNFTs[id]
        }

        /// The output with its fields, for scripts.
        access(all) view fun borrowOutput(_ id: UInt64): &FlowNetOutput.NFT? {
            if let nft = &self.ownedNFTs[id] as &{NonFungibleToken.NFT}? {
                return nft as! &FlowNetOutput.NFT
            }
            return nil
        }

        access(all) view fun borrowViewResolver(id: UInt64): &{ViewResolver.Resolver}? {
            if let nft = &self.ownedNFTs[id] as &{NonFungibleToken.NFT}? {
                return nft as &{ViewResolver.Resolver}
            }
            return nil
        }

        access(all) fun createEmptyCollection(): @{NonFungibleToken.Collection} {
            return <-create Collection()
        }
    }

    access(all) fun createEmptyCollection(nftType: Type): @{NonFungibleToken.Collection} {
        return <-create Collection()
    }

    access(all) view fun getContractViews(resourceType: Type?): [Type] {
        return [
            Type<MetadataViews.NFTCollectionData>(),
            Type<MetadataViews.NFTCollectionDisplay>()
        ]
    }

    access(all) fun resolveContractView(resourceType: Type?, viewType: Type): AnyStruct? {
        switch viewType {
            case Type<MetadataViews.NFTCollectionData>():
                return MetadataViews.NFTCollectionData(
                    storagePath: self.CollectionStoragePath,
                    publicPath: self.CollectionPublicPath,
                    publicCollection: Type<&FlowNetOutput.Collection>(),
                    publicLinkedType: Type<&FlowNetOutput.Collection>(),
                    createEmptyCollectionFunction: (fun(): @{NonFungibleToken.Collection} {
                        return <-FlowNetOutput.createEmptyCollection(nftType: Type<@FlowNetOutput.NFT>())
                    })
                )
            case Type<MetadataViews.NFTCollectionDisplay>():
                let image = MetadataViews.Media(
                    file: MetadataViews.HTTPFile(url: "https://flownet.dev/logo.svg"),
                    mediaType: "image/svg+xml"
                )
                return MetadataViews.NFTCollectionDisplay(
                    name: "FlowNet outputs",
                    description: "One NFT per fulfilled FlowNet task: what was asked of which weights, and what came back.",
                    externalURL: MetadataViews.ExternalURL("https://flownet.dev"),
                    squareImage: image,
                    bannerImage: image,
                    socials: {}
                )
        }
        return nil
    }

    /// Mints the output of a fulfilled task. Only the marketplace, on this
    /// account, can call it.
    access(account) fun mint(
        task: UInt64,
        prompt: String,
        modelId: String,
        weightsSha256: String,
        params: String,
        outputSha256: String,
        outputUri: String,
        outputMime: String,
        outputSize: UInt64,
        inputSha256: String?,
        inputSize: UInt64?,
        inputUri: String?,
        units: UInt64?,
        node: Address,
        requester: Address,
        mintedAt: UInt64
    ): @FlowNetOutput.NFT {
        self.totalSupply = self.totalSupply + 1
        let nft <- create NFT(
            id: self.totalSupply,
            task: task,
            prompt: prompt,
            modelId: modelId,
            weightsSha256: weightsSha256,
            params: params,
            outputSha256: outputSha256,
            outputUri: outputUri,
            outputMime: outputMime,
            outputSize: outputSize,
            inputSha256: inputSha256,
            inputSize: inputSize,
            inputUri: inputUri,
            units: units,
            node: node,
            requester: requester,
            mintedAt: mintedAt
        )
        emit Minted(id: nft.id, task: task, requester: requester, node: node, outputSha256: outputSha256)
        return <-nft
    }

    init() {
        self.totalSupply = 0
        self.CollectionStoragePath = /storage/flowNetOutputCollection
        self.CollectionPublicPath = /public/flowNetOutputCollection
    }
}
