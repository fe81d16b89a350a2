import "FungibleToken"
import "NonFungibleToken"
import "FlowNetToken"
import "FlowNetOutput"

/// The FlowNet marketplace on Flow: the rulebook of flownet-core
/// (`flownet-core/src/rules.rs`), rule for rule, with the same rejection
/// wording as the core's errors (`flownet-core/src/error.rs`), so a client
/// maps a failed transaction back to the core's typed error.
///
/// Authority comes from resources and entitlements, never from an address
/// passed as an argument:
/// - a `Member` in an account's storage is that account acting as itself
///   (submit, cancel, rate, register a node); its functions need the `Act`
///   entitlement, which only the account's own transactions (or a capability
///   the account chose to issue) can hold;
/// - a `NodeOperator` exists once per registered node and is the only way to
///   claim or fulfil that node's tasks (`Operate`);
/// - the `Sponsor` (faucet) and the token `Minter` stay in the admin account.
///
/// Amounts are UFix64, exactly the core's 10^-8 units; the payment split is
/// computed on integer units so rounding matches the core bit for bit. Time is
/// the block timestamp in whole seconds.
access(all) contract FlowNetMarketplace {

    // --- entitlements -----------------------------------------------------

    /// An account acting as itself through its Member.
    access(all) entitlement Act
    /// A node's owner acting for the node through its NodeOperator.
    access(all) entitlement Operate
    /// The admin's sponsor granting the test-network faucet.
    access(all) entitlement Grant

    // --- limits (flownet-core/src/rules.rs) --------------------------------

    access(all) let maxPromptBytes: Int
    access(all) let maxParamsBytes: Int
    access(all) let maxNameBytes: Int
    access(all) let maxEndpointBytes: Int
    access(all) let maxModelsPerNode: Int
    access(all) let maxModelIdBytes: Int
    access(all) let maxUriBytes: Int
    access(all) let maxMimeBytes: Int
    /// Largest reason a node gives for declining a task, in bytes.
    access(all) let maxDeclineReasonBytes: Int
    /// Largest input a task may name, in bytes.
    access(all) let maxInputBytes: UInt64
    /// Most units (output tokens) one metered task can ask for.
    access(all) let maxTaskUnits: UInt64
    access(all) let bountyRaters: UInt8
    access(all) let nodeSharePerMille: UInt64
    access(all) let treasurySharePerMille: UInt64

    // --- configuration, fixed at deployment (the core's LedgerConfig) ------

    /// A task must be claimed within this many seconds of its submission.
    access(all) let claimWindow: UInt64
    /// A claimed task must be fulfilled within this many seconds of its claim.
    access(all) let fulfilWindow: UInt64
    /// Raters can earn a task's bounty for this long; then anyone can sweep.
    access(all) let bountyWindow: UInt64
    /// The faucet's one-time grant per account; zero disables it (mainnet).
    access(all) let faucetAmount: UFix64

    access(all) let MemberStoragePath: StoragePath
    access(all) let NodeStoragePath: StoragePath
    access(all) let SponsorStoragePath: StoragePath

    // --- state ---------------------------------------------------------------

    /// Tasks submitted so far (the last task id).
    access(all) var taskCount: UInt64
    access(self) let escrow: @FlowNetToken.Vault
    access(self) let bountyPools: @FlowNetToken.Vault
    access(self) let treasury: @FlowNetToken.Vault
    access(self) var nodes: {Address: NodeInfo}
    access(self) var nodeOwners: [Address]
    access(self) var tasks: {UInt64: TaskInfo}
    access(self) var tasksByNode: {Address: [UInt64]}
    access(self) var tasksByRequester: {Address: [UInt64]}
    access(self) var ratings: {UInt64: {Address: RatingInfo}}
    access(self) var raters: {UInt64: [Address]}
    access(self) var faucetUsed: {Address: Bool}
    /// Outputs whose requester had no collection or no storage left when they
    /// were minted; the requester collects them with `collect_outputs.cdc`.
    access(self) let pendingOutputs: @{UInt64: FlowNetOutput.NFT}
    access(self) var pendingByRequester: {Address: [UInt64]}
    /// Refunds of metered tasks' unused escrow that could not be paid at
    /// fulfilment (the requester had no FlowNet vault): the requester collects
    /// them (collect_outputs.cdc), so a requester can never block a payment.
    access(self) var owedRefunds: {Address: UFix64}

    // --- events (the node's task feed and the receipts' outcomes) -----------

    access(all) event FaucetGranted(to: Address, amount: UFix64)
    access(all) event NodeRegistered(owner: Address, name: String, endpoint: String, models: Int)
    access(all) event NodeActiveSet(owner: Address, active: Bool)
    access(all) event TaskSubmitted(id: UInt64, requester: Address, node: Address, modelId: String, price: UFix64, maxUnits: UInt64, claimDeadline: UInt64)
    access(all) event TaskCancelled(id: UInt64, requester: Address, refunded: UFix64)
    access(all) event TaskClaimed(id: UInt64, node: Address, fulfilDeadline: UInt64)
    access(all) event TaskFulfilled(id: UInt64, node: Address, requester: Address, nft: UInt64, toNode: UFix64, toTreasury: UFix64, bounty: UFix64, outputSha256: String, units: UInt64?, refunded: UFix64)
    access(all) event TaskExpired(id: UInt64, requester: Address, refunded: UFix64, nodeMissed: Bool)
    access(all) event TaskDeclined(id: UInt64, node: Address, requester: Address, refunded: UFix64, reason: String)
    access(all) event TaskRated(id: UInt64, rater: Address, stars: UInt8, byRequester: Bool, bounty: UFix64)
    access(all) event BountySwept(id: UInt64, amount: UFix64)
    access(all) event RefundsCollected(requester: Address, amount: UFix64)

    // --- records ---------------------------------------------------------------

    access(all) enum TaskStatus: UInt8 {
        access(all) case open
        access(all) case claimed
        access(all) case fulfilled
        access(all) case cancelled
        access(all) case expired
        /// The node said it cannot run the task; the requester was refunded at once.
        access(all) case declined
    }

    access(all) struct OfferedModel {
        access(all) let modelId: String
        /// Hex SHA-256 of the weights the node runs (64 lowercase hex digits).
        access(all) let weightsSha256: String
        /// Per task, or (metered) per 1,000 output tokens.
        access(all) let price: UFix64
        /// What `price` is for: 0 a task, 1 a thousand output tokens.
        access(all) let unit: UInt8

        view init(modelId: String, weightsSha256: String, price: UFix64, unit: UInt8) {
            self.modelId = modelId
            self.weightsSha256 = weightsSha256
            self.price = price
            self.unit = unit
        }
    }

    access(all) struct NodeInfo {
        access(all) let owner: Address
        access(all) var name: String
        access(all) var endpoint: String
        access(all) var models: [OfferedModel]
        access(all) var active: Bool
        access(all) var fulfilled: UInt64
        /// Expired on the node: claimed and not fulfilled in time, or never claimed.
        access(all) var missed: UInt64
        /// Declined by the node (the requester refunded at once).
        access(all) var declined: UInt64
        /// Ratings by the requesters who paid: the only ones that move the score.
        access(all) var ratingsCount: UInt64
        access(all) var ratingsSum: UInt64
        /// What the rated tasks cost their payers, and the same weighted by stars.
        access(all) var ratedPaid: UFix64
        access(all) var ratedPaidStars: UFix64
        /// Ratings by everyone else: the community score.
        access(all) var communityCount: UInt64
        access(all) var communitySum: UInt64
        access(all) let registeredAt: UInt64

        init(owner: Address, name: String, endpoint: String, models: [OfferedModel], registeredAt: UInt64) {
            self.owner = owner
            self.name = name
            self.endpoint = endpoint
            self.models = models
            self.active = true
            self.fulfilled = 0
            self.missed = 0
            self.declined = 0
            self.ratingsCount = 0
            self.ratingsSum = 0
            self.ratedPaid = 0.0
            self.ratedPaidStars = 0.0
            self.communityCount = 0
            self.communitySum = 0
            self.registeredAt = registeredAt
        }

        access(all) view fun offer(_ modelId: String): OfferedModel? {
            for m in self.models {
                if m.modelId == modelId {
                    return m
                }
            }
            return nil
        }

        /// Reputation: the payers' stars weighted by what each rated task cost, with
        /// a prior of 3 stars weighing as much as 1.0 of paid tasks:
        /// (3 * 1.0 + sum(cost * stars)) / (1.0 + sum(cost)).
        access(all) view fun score(): UFix64 {
            return (3.0 + self.ratedPaidStars) / (1.0 + self.ratedPaid)
        }

        /// fulfilled / (fulfilled + missed), or nil before the first task ends.
        access(all) view fun reliability(): UFix64? {
            let total = self.fulfilled + self.missed
            if total == 0 {
                return nil
            }
            return UFix64(self.fulfilled) / UFix64(total)
        }

        /// Mean stars of non-payers' ratings, or nil without any.
        access(all) view fun communityScore(): UFix64? {
            if self.communityCount == 0 {
                return nil
            }
            return UFix64(self.communitySum) / UFix64(self.communityCount)
        }

        access(contract) fun update(name: String, endpoint: String, models: [OfferedModel]) {
            self.name = name
            self.endpoint = endpoint
            self.models = models
            self.active = true
        }

        access(contract) fun setActive(_ active: Bool) {
            self.active = active
        }

        access(contract) fun recordFulfilled() {
            self.fulfilled = self.fulfilled + 1
        }

        access(contract) fun recordMissed() {
            self.missed = self.missed + 1
        }

        access(contract) fun recordDeclined() {
            self.declined = self.declined + 1
        }

        /// `paid` is what the task cost its payer; it weighs a payer's stars.
        access(contract) fun recordRating(stars: UInt8, byRequester: Bool, paid: UFix64) {
            if byRequester {
                self.ratingsCount = self.ratingsCount + 1
                self.ratingsSum = self.ratingsSum + UInt64(stars)
                // Saturating, as the core's rules are, so no rating can abort on it.
                self.ratedPaid = self.ratedPaid.saturatingAdd(paid)
                self.ratedPaidStars = self.ratedPaidStars.saturatingAdd(paid.saturatingMultiply(UFix64(stars)))
            } else {
                self.communityCount = self.communityCount + 1
                self.communitySum = self.communitySum + UInt64(stars)
            }
        }
    }

    access(all) struct OutputRef {
        access(all) let sha256: String
        access(all) let uri: String
        access(all) let mime: String
        access(all) let size: UInt64

        view init(sha256: String, uri: String, mime: String, size: UInt64) {
            self.sha256 = sha256
            self.uri = uri
            self.mime = mime
            self.size = size
        }
    }

    /// A task's input by content address: its SHA-256, size and a URL the
    /// node fetches it from (and checks against the hash).
    access(all) struct InputRef {
        access(all) let sha256: String
        access(all) let size: UInt64
        access(all) let uri: String

        view init(sha256: String, size: UInt64, uri: String) {
            self.sha256 = sha256
            self.size = size
            self.uri = uri
        }
    }

    access(all) struct TaskInfo {
        access(all) let id: UInt64
        access(all) let requester: Address
        access(all) let node: Address
        access(all) let modelId: String
        access(all) let weightsSha256: String
        access(all) let prompt: String
        access(all) let params: String
        /// The escrow: the offer's price, or for a metered task what maxUnits cost.
        access(all) let price: UFix64
        access(all) let input: InputRef?
        /// A metered task's price per 1,000 units; nil for a per-task price.
        access(all) let unitPrice: UFix64?
        /// The most units a metered task may bill (0 for a per-task price).
        access(all) let maxUnits: UInt64
        /// The units the fulfilment billed (metered tasks).
        access(all) var units: UInt64?
        /// What went back to the requester: all of it on cancel and expiry,
        /// the unused part of a metered escrow on fulfilment.
        access(all) var refunded: UFix64
        access(all) var status: TaskStatus
        access(all) let submittedAt: UInt64
        access(all) let claimDeadline: UInt64
        access(all) var claimedAt: UInt64?
        access(all) var fulfilDeadline: UInt64?
        access(all) var fulfilledAt: UInt64?
        access(all) var result: OutputRef?
        access(all) var nft: UInt64?
        /// What is left of the task's rating bounty.
        access(all) var bountyPool: UFix64
        /// The bounty each of the first raters receives.
        access(all) var bountyShare: UFix64
        /// How many raters have been paid from the bounty.
        access(all) var bountyPaid: UInt8
        /// Why the node declined the task, when it did.
        access(all) var declinedReason: String?

        init(
            id: UInt64,
            requester: Address,
            node: Address,
            modelId: String,
            weightsSha256: String,
            prompt: String,
            params: String,
            price: UFix64,
            input: InputRef?,
            unitPrice: UFix64?,
            maxUnits: UInt64,
            submittedAt: UInt64,
            claimDeadline: UInt64
        ) {
            self.id = id
            self.requester = requester
            self.node = node
            self.modelId = modelId
            self.weightsSha256 = weightsSha256
            self.prompt = prompt
            self.params = params
            self.price = price
            self.input = input
            self.unitPrice = unitPrice
            self.maxUnits = maxUnits
            self.units = nil
            self.refunded = 0.0
            self.status = TaskStatus.open
            self.submittedAt = submittedAt
            self.claimDeadline = claimDeadline
            self.claimedAt = nil
            self.fulfilDeadline = nil
            self.fulfilledAt = nil
            self.result = nil
            self.nft = nil
            self.bountyPool = 0.0
            self.bountyShare = 0.0
            self.bountyPaid = 0
            self.declinedReason = nil
        }

        access(contract) fun setStatus(_ status: TaskStatus) {
            self.status = status
        }

        /// Ends an open or claimed task with its whole escrow refunded.
        access(contract) fun markRefunded(_ status: TaskStatus) {
            self.status = status
            self.refunded = self.price
        }

        access(contract) fun markDeclined(reason: String) {
            self.status = TaskStatus.declined
            self.refunded = self.price
            self.declinedReason = reason
        }

        access(contract) fun markClaimed(at: UInt64, deadline: UInt64) {
            self.status = TaskStatus.claimed
            self.claimedAt = at
            self.fulfilDeadline = deadline
        }

        access(contract) fun markFulfilled(at: UInt64, result: OutputRef, nft: UInt64, bountyPool: UFix64, bountyShare: UFix64, units: UInt64?, refunded: UFix64) {
            self.status = TaskStatus.fulfilled
            self.units = units
            self.refunded = refunded
            self.fulfilledAt = at
            self.result = result
            self.nft = nft
            self.bountyPool = bountyPool
            self.bountyShare = bountyShare
        }

        access(contract) fun payBounty(_ amount: UFix64) {
            self.bountyPool = self.bountyPool - amount
            self.bountyPaid = self.bountyPaid + 1
        }

        access(contract) fun sweepBounty() {
            self.bountyPool = 0.0
        }
    }

    access(all) struct RatingInfo {
        access(all) let task: UInt64
        access(all) let rater: Address
        access(all) let stars: UInt8
        /// Whether the rater is the requester (whose rating moves the node's score).
        access(all) let byRequester: Bool
        /// What the rater earned from the task's bounty.
        access(all) let bounty: UFix64
        access(all) let at: UInt64

        view init(task: UInt64, rater: Address, stars: UInt8, byRequester: Bool, bounty: UFix64, at: UInt64) {
            self.task = task
            self.rater = rater
            self.stars = stars
            self.byRequester = byRequester
            self.bounty = bounty
            self.at = at
        }
    }

    /// The ledger's configuration and totals (the core's LedgerConfig and Globals).
    access(all) struct Info {
        access(all) let claimWindow: UInt64
        access(all) let fulfilWindow: UInt64
        access(all) let bountyWindow: UInt64
        access(all) let faucetAmount: UFix64
        /// FlowNetToken's total supply: every token the faucet minted, less burns.
        access(all) let totalMinted: UFix64
        access(all) let escrowed: UFix64
        access(all) let bountyPools: UFix64
        access(all) let treasury: UFix64
        access(all) let taskCount: UInt64
        access(all) let nftCount: UInt64
        access(all) let now: UInt64
        access(all) let height: UInt64

        view init(
            claimWindow: UInt64, fulfilWindow: UInt64, bountyWindow: UInt64, faucetAmount: UFix64,
            totalMinted: UFix64, escrowed: UFix64, bountyPools: UFix64, treasury: UFix64,
            taskCount: UInt64, nftCount: UInt64, now: UInt64, height: UInt64
        ) {
            self.claimWindow = claimWindow
            self.fulfilWindow = fulfilWindow
            self.bountyWindow = bountyWindow
            self.faucetAmount = faucetAmount
            self.totalMinted = totalMinted
            self.escrowed = escrowed
            self.bountyPools = bountyPools
            self.treasury = treasury
            self.taskCount = taskCount
            self.nftCount = nftCount
            self.now = now
            self.height = height
        }
    }

    /// What an account holds, for the core's Account record.
    access(all) struct AccountInfo {
        access(all) let address: Address
        access(all) let hasVault: Bool
        access(all) let balance: UFix64
        access(all) let faucetUsed: Bool
        access(all) let hasCollection: Bool
        access(all) let hasMember: Bool
        access(all) let pendingOutputs: [UInt64]

        view init(address: Address, hasVault: Bool, balance: UFix64, faucetUsed: Bool, hasCollection: Bool, hasMember: Bool, pendingOutputs: [UInt64]) {
            self.address = address
            self.hasVault = hasVault
            self.balance = balance
            self.faucetUsed = faucetUsed
            self.hasCollection = hasCollection
            self.hasMember = hasMember
            self.pendingOutputs = pendingOutputs
        }
    }

    // --- authority -------------------------------------------------------------

    /// An account acting as itself. Anyone may create one; it speaks for the
    /// account whose storage holds it, and only through an `Act` reference.
    access(all) resource Member {

        access(all) view fun address(): Address? {
            return self.owner?.address
        }

        access(Act) fun submit(
            node: Address,
            modelId: String,
            prompt: String,
            params: String,
            maxPrice: UFix64,
            inputSha256: String?,
            inputSize: UInt64,
            inputUri: String?,
            maxUnits: UInt64,
            payment: auth(FungibleToken.Withdraw) &FlowNetToken.Vault
        ): UInt64 {
            pre {
                self.owner != nil: "not allowed: a member acts only from its account's storage"
            }
            return FlowNetMarketplace.submit(
                requester: self.owner!.address,
                node: node,
                modelId: modelId,
                prompt: prompt,
                params: params,
                maxPrice: maxPrice,
                inputSha256: inputSha256,
                inputSize: inputSize,
                inputUri: inputUri,
                maxUnits: maxUnits,
                payment: payment
            )
        }

        /// Takes back an unclaimed task's escrow; returns the refund.
        access(Act) fun cancel(task: UInt64): @FlowNetToken.Vault {
            pre {
                self.owner != nil: "not allowed: a member acts only from its account's storage"
            }
            return <-FlowNetMarketplace.cancel(signer: self.owner!.address, id: task)
        }

        /// Rates a fulfilled task; returns the bounty earned (possibly empty).
        access(Act) fun rate(task: UInt64, stars: UInt8): @FlowNetToken.Vault {
            pre {
                self.owner != nil: "not allowed: a member acts only from its account's storage"
            }
            return <-FlowNetMarketplace.rate(rater: self.owner!.address, id: task, stars: stars)
        }

        /// Registers this account's node. The returned operator is the node's
        /// only authority: keep it in the account's storage.
        access(Act) fun registerNode(name: String, endpoint: String, models: [OfferedModel]): @NodeOperator {
            pre {
                self.owner != nil: "not allowed: a member acts only from its account's storage"
                FlowNetMarketplace.getNode(self.owner!.address) == nil:
                    "already exists: node ".concat(self.owner!.address.toString()).concat(" (update it through its NodeOperator)")
            }
            return <-FlowNetMarketplace.registerNode(owner: self.owner!.address, name: name, endpoint: endpoint, models: models)
        }
    }

    access(all) fun createMember(): @Member {
        return <-create Member()
    }

    /// A registered node's authority. Exactly one exists per node; only through
    /// an `Operate` reference to it can the node's tasks be claimed or fulfilled.
    access(all) resource NodeOperator {
        access(all) let node: Address

        init(node: Address) {
            self.node = node
        }

        /// Replaces the node's name, endpoint and offers; keeps its record.
        access(Operate) fun update(name: String, endpoint: String, models: [OfferedModel]) {
            FlowNetMarketplace.updateNode(owner: self.node, name: name, endpoint: endpoint, models: models)
        }

        access(Operate) fun setActive(_ active: Bool) {
            FlowNetMarketplace.setNodeActive(owner: self.node, active: active)
        }

        access(Operate) fun claim(task: UInt64) {
            FlowNetMarketplace.claim(node: self.node, id: task)
        }

        /// Says the node cannot run an open or claimed task (before its deadline),
        /// with a reason; the requester gets the whole escrow back at once.
        access(Operate) fun decline(task: UInt64, reason: String) {
            FlowNetMarketplace.decline(node: self.node, id: task, reason: reason)
        }

        /// Delivers the output; the node's owner is paid 90 % of its cost (the
        /// price, or for a metered task the `units` it billed, the rest of the
        /// escrow going back to the requester) and the requester receives the
        /// output NFT. Returns the NFT's id.
        access(Operate) fun fulfil(task: UInt64, sha256: String, uri: String, mime: String, size: UInt64, units: UInt64?): UInt64 {
            return FlowNetMarketplace.fulfil(
                node: self.node,
                id: task,
                result: OutputRef(sha256: sha256, uri: uri, mime: mime, size: size),
                units: units
            )
        }
    }

    /// The admin's authority over the test-network faucet.
    access(all) resource Sponsor {
        /// Grants `recipient` the faucet's welcome amount, once per account.
        access(Grant) fun faucet(recipient: Address): UFix64 {
            return FlowNetMarketplace.faucet(recipient: recipient)
        }
    }

    // --- the rules ---------------------------------------------------------------

    access(all) view fun now(): UInt64 {
        return UInt64(getCurrentBlock().timestamp)
    }

    access(contract) fun faucet(recipient: Address): UFix64 {
        pre {
            self.faucetAmount > 0.0: "faucet: this ledger has no faucet"
            FlowNetMarketplace.receiver(recipient) != nil: "not found: account ".concat(recipient.toString())
            self.faucetUsed[recipient] == nil:
                "faucet: account ".concat(recipient.toString()).concat(" has already received its welcome amount")
        }
        let minter = self.account.storage.borrow<&FlowNetToken.Minter>(from: FlowNetToken.MinterStoragePath)
            ?? panic("storage: the FlowNetToken minter is missing from the admin account")
        let tokens <- minter.mintTokens(amount: self.faucetAmount)
        self.faucetUsed[recipient] = true
        self.receiver(recipient)!.deposit(from: <-tokens)
        emit FaucetGranted(to: recipient, amount: self.faucetAmount)
        return self.faucetAmount
    }

    access(contract) fun registerNode(owner: Address, name: String, endpoint: String, models: [OfferedModel]): @NodeOperator {
        pre {
            FlowNetMarketplace.isValidName(name):
                "invalid input: node name must be 1 to ".concat(FlowNetMarketplace.maxNameBytes.toString()).concat(" printable bytes")
            FlowNetMarketplace.isValidEndpoint(endpoint):
                "invalid input: endpoint must be an http:// or https:// URL of at most ".concat(FlowNetMarketplace.maxEndpointBytes.toString()).concat(" bytes: a host, an optional port and path, no user info, query or fragment")
            models.length >= 1 && models.length <= FlowNetMarketplace.maxModelsPerNode:
                "invalid input: a node offers 1 to ".concat(FlowNetMarketplace.maxModelsPerNode.toString()).concat(" models")
            FlowNetMarketplace.modelsError(models) == nil: FlowNetMarketplace.modelsError(models) ?? ""
        }
        let now = self.now()
        self.nodes[owner] = NodeInfo(owner: owner, name: name, endpoint: endpoint, models: models, registeredAt: now)
        self.nodeOwners.append(owner)
        emit NodeRegistered(owner: owner, name: name, endpoint: endpoint, models: models.length)
        return <-create NodeOperator(node: owner)
    }

    access(contract) fun updateNode(owner: Address, name: String, endpoint: String, models: [OfferedModel]) {
        pre {
            FlowNetMarketplace.isValidName(name):
                "invalid input: node name must be 1 to ".concat(FlowNetMarketplace.maxNameBytes.toString()).concat(" printable bytes")
            FlowNetMarketplace.isValidEndpoint(endpoint):
                "invalid input: endpoint must be an http:// or https:// URL of at most ".concat(FlowNetMarketplace.maxEndpointBytes.toString()).concat(" bytes: a host, an optional port and path, no user info, query or fragment")
            models.length >= 1 && models.length <= FlowNetMarketplace.maxModelsPerNode:
                "invalid input: a node offers 1 to ".concat(FlowNetMarketplace.maxModelsPerNode.toString()).concat(" models")
            FlowNetMarketplace.modelsError(models) == nil: FlowNetMarketplace.modelsError(models) ?? ""
            FlowNetMarketplace.nodes[owner] != nil: "not found: node ".concat(owner.toString())
        }
        let node = self.nodes[owner]!
        node.update(name: name, endpoint: endpoint, models: models)
        self.nodes[owner] = node
        emit NodeRegistered(owner: owner, name: name, endpoint: endpoint, models: models.length)
    }

    access(contract) fun setNodeActive(owner: Address, active: Bool) {
        pre {
            FlowNetMarketplace.nodes[owner] != nil: "not found: node ".concat(owner.toString())
        }
        let node = self.nodes[owner]!
        node.setActive(active)
        self.nodes[owner] = node
        emit NodeActiveSet(owner: owner, active: active)
    }

    access(contract) fun submit(
        requester: Address,
        node: Address,
        modelId: String,
        prompt: String,
        params: String,
        maxPrice: UFix64,
        inputSha256: String?,
        inputSize: UInt64,
        inputUri: String?,
        maxUnits: UInt64,
        payment: auth(FungibleToken.Withdraw) &FlowNetToken.Vault
    ): UInt64 {
        pre {
            prompt.utf8.length <= FlowNetMarketplace.maxPromptBytes:
                "prompt too large: ".concat(prompt.utf8.length.toString()).concat(" bytes, at most ")
                    .concat(FlowNetMarketplace.maxPromptBytes.toString()).concat(" allowed")
            params.utf8.length <= FlowNetMarketplace.maxParamsBytes:
                "params too large: ".concat(params.utf8.length.toString()).concat(" bytes, at most ")
                    .concat(FlowNetMarketplace.maxParamsBytes.toString()).concat(" allowed")
            FlowNetMarketplace.isJsonObject(params): "invalid input: params must be a JSON object"
            inputSha256 == nil || (inputSize >= 1 && inputSize <= FlowNetMarketplace.maxInputBytes):
                "invalid input: an input is 1 to ".concat(FlowNetMarketplace.maxInputBytes.toString())
                    .concat(" bytes, this one ").concat(inputSize.toString())
            inputSha256 == nil || FlowNetMarketplace.isFetchUri(inputUri):
                "invalid input: input uri must be an http:// or https:// URL of at most "
                    .concat(FlowNetMarketplace.maxUriBytes.toString()).concat(" printable ASCII bytes")
            inputSha256 == nil || FlowNetMarketplace.isSha256Hex(inputSha256!):
                "invalid input: invalid sha256 ".concat(FlowNetMarketplace.debugString(inputSha256 ?? ""))
                    .concat(": expected 64 hex digits")
            inputSha256 != nil || (inputSize == 0 && inputUri == nil):
                "invalid input: an input names its sha256"
            FlowNetMarketplace.nodes[node] != nil: "not found: node ".concat(node.toString())
            FlowNetMarketplace.nodes[node]!.active: "node ".concat(node.toString()).concat(" is not active")
            FlowNetMarketplace.nodes[node]!.offer(modelId) != nil:
                "node ".concat(node.toString()).concat(" does not offer model ").concat(modelId)
            FlowNetMarketplace.maxUnitsError(FlowNetMarketplace.nodes[node]!.offer(modelId)!, maxUnits) == nil:
                FlowNetMarketplace.maxUnitsError(FlowNetMarketplace.nodes[node]!.offer(modelId)!, maxUnits) ?? ""
            FlowNetMarketplace.escrowFor(FlowNetMarketplace.nodes[node]!.offer(modelId)!, maxUnits) != nil:
                "overflow: the escrow of ".concat(maxUnits.toString()).concat(" units does not fit an amount")
            FlowNetMarketplace.escrowFor(FlowNetMarketplace.nodes[node]!.offer(modelId)!, maxUnits)! <= maxPrice:
                "the node's price ".concat(FlowNetMarketplace.formatAmount(FlowNetMarketplace.escrowFor(FlowNetMarketplace.nodes[node]!.offer(modelId)!, maxUnits)!))
                    .concat(" FLOWNET is above your max price ").concat(FlowNetMarketplace.formatAmount(maxPrice)).concat(" FLOWNET")
            payment.balance >= FlowNetMarketplace.escrowFor(FlowNetMarketplace.nodes[node]!.offer(modelId)!, maxUnits)!:
                "insufficient funds: ".concat(FlowNetMarketplace.formatAmount(FlowNetMarketplace.escrowFor(FlowNetMarketplace.nodes[node]!.offer(modelId)!, maxUnits)!))
                    .concat(" FLOWNET needed, ").concat(FlowNetMarketplace.formatAmount(payment.balance)).concat(" FLOWNET available")
        }
        let offer = self.nodes[node]!.offer(modelId)!
        let price = self.escrowFor(offer, maxUnits)!
        var input: InputRef? = nil
        if let sha = inputSha256 {
            input = InputRef(sha256: sha, size: inputSize, uri: inputUri!)
        }
        var unitPrice: UFix64? = nil
        if offer.unit == 1 {
            unitPrice = offer.price
        }
        self.escrow.deposit(from: <-payment.withdraw(amount: price))
        self.taskCount = self.taskCount + 1
        let now = self.now()
        let task = TaskInfo(
            id: self.taskCount,
            requester: requester,
            node: node,
            modelId: modelId,
            weightsSha256: offer.weightsSha256,
            prompt: prompt,
            params: params,
            price: price,
            input: input,
            unitPrice: unitPrice,
            maxUnits: maxUnits,
            submittedAt: now,
            claimDeadline: now + self.claimWindow
        )
        self.tasks[task.id] = task
        let byNode = self.tasksByNode[node] ?? []
        byNode.append(task.id)
        self.tasksByNode[node] = byNode
        let byRequester = self.tasksByRequester[requester] ?? []
        byRequester.append(task.id)
        self.tasksByRequester[requester] = byRequester
        emit TaskSubmitted(id: task.id, requester: requester, node: node, modelId: modelId, price: price, maxUnits: maxUnits, claimDeadline: task.claimDeadline)
        return task.id
    }

    access(contract) fun cancel(signer: Address, id: UInt64): @FlowNetToken.Vault {
        pre {
            FlowNetMarketplace.tasks[id] != nil: "not found: task ".concat(id.toString())
            FlowNetMarketplace.tasks[id]!.requester == signer:
                "not allowed: only the requester can cancel task ".concat(id.toString())
            FlowNetMarketplace.tasks[id]!.status == TaskStatus.open:
                FlowNetMarketplace.invalidState(id, "cancel")
        }
        let task = self.tasks[id]!
        task.markRefunded(TaskStatus.cancelled)
        self.tasks[id] = task
        emit TaskCancelled(id: id, requester: task.requester, refunded: task.price)
        return <-self.escrow.withdraw(amount: task.price)
    }

    access(contract) fun claim(node: Address, id: UInt64) {
        pre {
            FlowNetMarketplace.tasks[id] != nil: "not found: task ".concat(id.toString())
            FlowNetMarketplace.tasks[id]!.node == node:
                "wrong node: task ".concat(id.toString()).concat(" is addressed to node ").concat(FlowNetMarketplace.tasks[id]!.node.toString())
            FlowNetMarketplace.tasks[id]!.status == TaskStatus.open:
                FlowNetMarketplace.invalidState(id, "claim")
            FlowNetMarketplace.now() <= FlowNetMarketplace.tasks[id]!.claimDeadline:
                "deadline passed: task ".concat(id.toString()).concat(" had to be claimed by ")
                    .concat(FlowNetMarketplace.tasks[id]!.claimDeadline.toString())
        }
        let now = self.now()
        let task = self.tasks[id]!
        task.markClaimed(at: now, deadline: now + self.fulfilWindow)
        self.tasks[id] = task
        emit TaskClaimed(id: id, node: node, fulfilDeadline: now + self.fulfilWindow)
    }

    access(contract) fun fulfil(node: Address, id: UInt64, result: OutputRef, units: UInt64?): UInt64 {
        pre {
            FlowNetMarketplace.tasks[id] != nil: "not found: task ".concat(id.toString())
            FlowNetMarketplace.tasks[id]!.node == node:
                "wrong node: task ".concat(id.toString()).concat(" is addressed to node ").concat(FlowNetMarketplace.tasks[id]!.node.toString())
            FlowNetMarketplace.tasks[id]!.status == TaskStatus.claimed:
                FlowNetMarketplace.invalidState(id, "fulfil")
            FlowNetMarketplace.now() <= (FlowNetMarketplace.tasks[id]!.fulfilDeadline ?? 0):
                "deadline passed: task ".concat(id.toString()).concat(" had to be fulfilled by ")
                    .concat((FlowNetMarketplace.tasks[id]!.fulfilDeadline ?? 0).toString())
            result.uri.utf8.length >= 1 && result.uri.utf8.length <= FlowNetMarketplace.maxUriBytes:
                "invalid input: output uri must be 1 to ".concat(FlowNetMarketplace.maxUriBytes.toString()).concat(" bytes")
            FlowNetMarketplace.isValidMime(result.mime): "invalid input: output mime must be a type/subtype"
            FlowNetMarketplace.isSha256Hex(result.sha256):
                "invalid input: invalid sha256 ".concat(FlowNetMarketplace.debugString(result.sha256)).concat(": expected 64 hex digits")
            FlowNetMarketplace.tasks[id]!.unitPrice != nil || units == nil:
                "invalid input: task ".concat(id.toString()).concat(" is priced per task: a fulfilment states no units")
            FlowNetMarketplace.tasks[id]!.unitPrice == nil || units != nil:
                "invalid input: task ".concat(id.toString()).concat(" is metered: the fulfilment must state its units")
            (units ?? 0) <= FlowNetMarketplace.tasks[id]!.maxUnits:
                "invalid input: task ".concat(id.toString()).concat(" allows at most ")
                    .concat(FlowNetMarketplace.tasks[id]!.maxUnits.toString()).concat(" units, the fulfilment states ")
                    .concat((units ?? 0).toString())
            FlowNetMarketplace.receiver(FlowNetMarketplace.tasks[id]!.node) != nil:
                "not found: account ".concat(FlowNetMarketplace.tasks[id]!.node.toString())
        }
        let now = self.now()
        let task = self.tasks[id]!
        // What the output costs: the escrow, or for a metered task the units it
        // billed (never more than the escrow, as units <= maxUnits).
        var cost = task.price
        if let unitPrice = task.unitPrice {
            cost = self.meteredCost(unitPrice, units!)!
        }
        let refunded = task.price - cost
        let costUnits = self.units(cost)
        let toNode = self.fromUnits(UInt64(UInt128(costUnits) * UInt128(self.nodeSharePerMille) / 1000))
        let toTreasury = self.fromUnits(UInt64(UInt128(costUnits) * UInt128(self.treasurySharePerMille) / 1000))
        // The bounty takes the rounding remainder, so the three parts always sum to the cost.
        let bounty = cost - toNode - toTreasury
        let share = self.fromUnits(self.units(bounty) / UInt64(self.bountyRaters))

        // Checks, effects, interactions: the task is final (fulfilled, the node's
        // count raised, the escrow moved) before anything outside this contract
        // is touched, so no code that runs later can find it claimed again, and
        // no stale copy of it is written back afterwards.
        let nft <- FlowNetOutput.mint(
            task: id,
            prompt: task.prompt,
            modelId: task.modelId,
            weightsSha256: task.weightsSha256,
            params: task.params,
            outputSha256: result.sha256,
            outputUri: result.uri,
            outputMime: result.mime,
            outputSize: result.size,
            inputSha256: task.input?.sha256,
            inputSize: task.input?.size,
            inputUri: task.input?.uri,
            units: units,
            node: task.node,
            requester: task.requester,
            mintedAt: now
        )
        let nftId = nft.id
        task.markFulfilled(at: now, result: result, nft: nftId, bountyPool: bounty, bountyShare: share, units: units, refunded: refunded)
        self.tasks[id] = task
        let nodeInfo = self.nodes[task.node]!
        nodeInfo.recordFulfilled()
        self.nodes[task.node] = nodeInfo

        let paid <- self.escrow.withdraw(amount: task.price)
        self.treasury.deposit(from: <-paid.withdraw(amount: toTreasury))
        self.bountyPools.deposit(from: <-paid.withdraw(amount: bounty))
        let refund <- paid.withdraw(amount: refunded)
        // A requester without FlowNet's own vault is owed the refund instead:
        // it must not be able to block the node's payment.
        var requesterVault: &FlowNetToken.Vault? = nil
        if refunded > 0.0 {
            requesterVault = self.receiver(task.requester)
        }
        if refunded > 0.0 && requesterVault == nil {
            self.owedRefunds[task.requester] = (self.owedRefunds[task.requester] ?? 0.0) + refunded
            self.escrow.deposit(from: <-refund.withdraw(amount: refunded))
        }
        emit TaskFulfilled(
            id: id, node: task.node, requester: task.requester, nft: nftId,
            toNode: toNode, toTreasury: toTreasury, bounty: bounty, outputSha256: result.sha256,
            units: units, refunded: refunded
        )

        // The only deposits into other accounts go into this project's own
        // concrete types (a FlowNetToken.Vault, a FlowNetOutput.Collection),
        // whose code is this project's: no code an account published runs here.
        self.receiver(task.node)!.deposit(from: <-paid)
        if let vault = requesterVault {
            vault.deposit(from: <-refund)
        } else {
            destroy refund
        }
        self.deliver(<-nft, to: task.requester)
        return nftId
    }

    /// The addressed node says it cannot run an open or claimed task, before its
    /// deadline (past it, the task is the node's miss, which `expire` records).
    /// The requester gets the whole escrow back at once; a requester without
    /// FlowNet's own vault is owed it instead, so it cannot block the decline.
    access(contract) fun decline(node: Address, id: UInt64, reason: String) {
        pre {
            FlowNetMarketplace.isValidDeclineReason(reason):
                "invalid input: a decline's reason must be 1 to ".concat(FlowNetMarketplace.maxDeclineReasonBytes.toString())
                    .concat(" bytes, not all spaces, with no control characters")
            FlowNetMarketplace.tasks[id] != nil: "not found: task ".concat(id.toString())
            FlowNetMarketplace.tasks[id]!.node == node:
                "wrong node: task ".concat(id.toString()).concat(" is addressed to node ").concat(FlowNetMarketplace.tasks[id]!.node.toString())
            FlowNetMarketplace.tasks[id]!.status == TaskStatus.open
                || FlowNetMarketplace.tasks[id]!.status == TaskStatus.claimed:
                FlowNetMarketplace.invalidState(id, "decline")
            FlowNetMarketplace.now() <= FlowNetMarketplace.currentDeadline(id):
                "deadline passed: task ".concat(id.toString()).concat(" could be declined until ")
                    .concat(FlowNetMarketplace.currentDeadline(id).toString()).concat("; expire it instead")
        }
        // Checks, effects, interactions: the task is final and the node's count
        // raised before any vault is touched.
        let task = self.tasks[id]!
        task.markDeclined(reason: reason)
        self.tasks[id] = task
        let nodeInfo = self.nodes[task.node]!
        nodeInfo.recordDeclined()
        self.nodes[task.node] = nodeInfo
        emit TaskDeclined(id: id, node: node, requester: task.requester, refunded: task.price, reason: reason)
        if let vault = self.receiver(task.requester) {
            vault.deposit(from: <-self.escrow.withdraw(amount: task.price))
        } else {
            // The escrow stays where it is, owed to the requester.
            self.owedRefunds[task.requester] = (self.owedRefunds[task.requester] ?? 0.0) + task.price
        }
    }

    /// A decline's reason: 1 to maxDeclineReasonBytes bytes, not all spaces, and no
    /// ASCII control characters (the core's rule, byte for byte).
    access(all) view fun isValidDeclineReason(_ reason: String): Bool {
        let bytes = reason.utf8
        if bytes.length < 1 || bytes.length > self.maxDeclineReasonBytes {
            return false
        }
        var blank = true
        for b in bytes {
            if b < 32 || b == 127 {
                return false
            }
            if b != 32 {
                blank = false
            }
        }
        return !blank
    }

    /// Anyone refunds a task whose deadline has passed; its node missed it,
    /// whether it claimed the task or never did.
    access(all) fun expire(id: UInt64): UFix64 {
        pre {
            FlowNetMarketplace.tasks[id] != nil: "not found: task ".concat(id.toString())
            FlowNetMarketplace.tasks[id]!.status == TaskStatus.open
                || FlowNetMarketplace.tasks[id]!.status == TaskStatus.claimed:
                FlowNetMarketplace.invalidState(id, "expire")
            FlowNetMarketplace.now() > FlowNetMarketplace.currentDeadline(id):
                "deadline not passed: task ".concat(id.toString()).concat(" is ")
                    .concat(FlowNetMarketplace.statusName(FlowNetMarketplace.tasks[id]!.status))
                    .concat(" until ").concat(FlowNetMarketplace.currentDeadline(id).toString())
            FlowNetMarketplace.receiver(FlowNetMarketplace.tasks[id]!.requester) != nil:
                "not found: account ".concat(FlowNetMarketplace.tasks[id]!.requester.toString())
        }
        let task = self.tasks[id]!
        // Claimed and not delivered, or never claimed: either way the node missed
        // it (a live node claims, or declines, at once).
        let missed = true
        let nodeInfo = self.nodes[task.node]!
        nodeInfo.recordMissed()
        self.nodes[task.node] = nodeInfo
        task.markRefunded(TaskStatus.expired)
        self.tasks[id] = task
        self.receiver(task.requester)!.deposit(from: <-self.escrow.withdraw(amount: task.price))
        emit TaskExpired(id: id, requester: task.requester, refunded: task.price, nodeMissed: missed)
        return task.price
    }

    access(contract) fun rate(rater: Address, id: UInt64, stars: UInt8): @FlowNetToken.Vault {
        pre {
            stars >= 1 && stars <= 5: "invalid input: stars must be 1 to 5, got ".concat(stars.toString())
            FlowNetMarketplace.tasks[id] != nil: "not found: task ".concat(id.toString())
            FlowNetMarketplace.tasks[id]!.status == TaskStatus.fulfilled:
                FlowNetMarketplace.invalidState(id, "rate")
            rater != FlowNetMarketplace.tasks[id]!.node:
                "not allowed: a node's owner cannot rate the node's own outputs"
            FlowNetMarketplace.rating(task: id, rater: rater) == nil:
                "already rated: ".concat(rater.toString()).concat(" has already rated task ").concat(id.toString())
        }
        let now = self.now()
        let task = self.tasks[id]!
        let byRequester = rater == task.requester
        let nodeInfo = self.nodes[task.node]!
        // What the payer paid (the escrow less what came back) weighs its stars.
        nodeInfo.recordRating(stars: stars, byRequester: byRequester, paid: task.price - task.refunded)
        self.nodes[task.node] = nodeInfo

        let inWindow = now <= (task.fulfilledAt ?? 0) + self.bountyWindow
        var bounty: UFix64 = 0.0
        if inWindow && task.bountyPaid < self.bountyRaters && task.bountyPool > 0.0 {
            // The last paid rater takes the rounding remainder, so the pool empties exactly.
            if task.bountyPaid + 1 == self.bountyRaters {
                bounty = task.bountyPool
            } else {
                bounty = task.bountyShare < task.bountyPool ? task.bountyShare : task.bountyPool
            }
            task.payBounty(bounty)
        }
        self.tasks[id] = task

        let byRater = self.ratings[id] ?? {}
        byRater[rater] = RatingInfo(task: id, rater: rater, stars: stars, byRequester: byRequester, bounty: bounty, at: now)
        self.ratings[id] = byRater
        let list = self.raters[id] ?? []
        list.append(rater)
        self.raters[id] = list
        emit TaskRated(id: id, rater: rater, stars: stars, byRequester: byRequester, bounty: bounty)
        return <-self.bountyPools.withdraw(amount: bounty)
    }

    /// Anyone moves an old task's unclaimed bounty to the treasury.
    access(all) fun sweep(id: UInt64): UFix64 {
        pre {
            FlowNetMarketplace.tasks[id] != nil: "not found: task ".concat(id.toString())
            FlowNetMarketplace.tasks[id]!.status == TaskStatus.fulfilled:
                FlowNetMarketplace.invalidState(id, "sweep")
            FlowNetMarketplace.now() > (FlowNetMarketplace.tasks[id]!.fulfilledAt ?? 0) + FlowNetMarketplace.bountyWindow:
                "deadline not passed: task ".concat(id.toString()).concat("'s rating bounty is open until ")
                    .concat(((FlowNetMarketplace.tasks[id]!.fulfilledAt ?? 0) + FlowNetMarketplace.bountyWindow).toString())
            FlowNetMarketplace.tasks[id]!.bountyPool > 0.0:
                "invalid input: task ".concat(id.toString()).concat(" has no bounty left to sweep")
        }
        let task = self.tasks[id]!
        let amount = task.bountyPool
        task.sweepBounty()
        self.tasks[id] = task
        self.treasury.deposit(from: <-self.bountyPools.withdraw(amount: amount))
        emit BountySwept(id: id, amount: amount)
        return amount
    }

    /// Moves outputs that could not be delivered at mint time into the
    /// requester's collection.
    access(all) fun collectOutputs(member: auth(Act) &Member, into: &{NonFungibleToken.Receiver}): Int {
        pre {
            member.owner != nil: "not allowed: a member acts only from its account's storage"
        }
        let owner = member.owner!.address
        let ids = self.pendingByRequester.remove(key: owner) ?? []
        // Every record leaves the marketplace's books before `into` (the
        // caller's receiver, which may be code it wrote) is called at all.
        let outputs: @[FlowNetOutput.NFT] <- []
        for id in ids {
            outputs.append(<-self.pendingOutputs.remove(key: id)!)
        }
        while outputs.length > 0 {
            into.deposit(token: <-outputs.removeFirst())
        }
        destroy outputs
        return ids.length
    }

    /// Pays `member`'s account the refunds it was owed because it had no
    /// FlowNet vault when its metered tasks were fulfilled. Returns the amount.
    access(all) fun collectRefunds(member: auth(Act) &Member): UFix64 {
        pre {
            member.owner != nil: "not allowed: a member acts only from its account's storage"
            FlowNetMarketplace.owedRefunds[member.owner!.address] == nil
                || FlowNetMarketplace.receiver(member.owner!.address) != nil:
                "not found: account ".concat(member.owner!.address.toString())
        }
        let owner = member.owner!.address
        let amount = self.owedRefunds.remove(key: owner) ?? 0.0
        if amount > 0.0 {
            self.receiver(owner)!.deposit(from: <-self.escrow.withdraw(amount: amount))
            emit RefundsCollected(requester: owner, amount: amount)
        }
        return amount
    }

    /// What `owner` is owed in refunds it has not collected.
    access(all) view fun getOwedRefund(_ owner: Address): UFix64 {
        return self.owedRefunds[owner] ?? 0.0
    }

    /// Sets an account up for FlowNet: a FLOWNET vault with its receiver and
    /// public balance, an output collection, and a Member. Idempotent; it
    /// touches nothing but the FlowNet paths.
    access(all) fun setupAccount(_ account: auth(Storage, Capabilities) &Account) {
        if account.storage.type(at: FlowNetToken.VaultStoragePath) == nil {
            account.storage.save(
                <-FlowNetToken.createEmptyVault(vaultType: Type<@FlowNetToken.Vault>()),
                to: FlowNetToken.VaultStoragePath
            )
        }
        if !account.capabilities.exists(FlowNetToken.VaultPublicPath) {
            account.capabilities.publish(
                account.capabilities.storage.issue<&FlowNetToken.Vault>(FlowNetToken.VaultStoragePath),
                at: FlowNetToken.VaultPublicPath
            )
        }
        if !account.capabilities.exists(FlowNetToken.ReceiverPublicPath) {
            account.capabilities.publish(
                account.capabilities.storage.issue<&FlowNetToken.Vault>(FlowNetToken.VaultStoragePath),
                at: FlowNetToken.ReceiverPublicPath
            )
        }
        if account.storage.type(at: FlowNetOutput.CollectionStoragePath) == nil {
            account.storage.save(
                <-FlowNetOutput.createEmptyCollection(nftType: Type<@FlowNetOutput.NFT>()),
                to: FlowNetOutput.CollectionStoragePath
            )
        }
        if !account.capabilities.exists(FlowNetOutput.CollectionPublicPath) {
            account.capabilities.publish(
                account.capabilities.storage.issue<&FlowNetOutput.Collection>(FlowNetOutput.CollectionStoragePath),
                at: FlowNetOutput.CollectionPublicPath
            )
        }
        if account.storage.type(at: self.MemberStoragePath) == nil {
            account.storage.save(<-create Member(), to: self.MemberStoragePath)
        }
    }

    // --- internals -----------------------------------------------------------

    access(self) fun deliver(_ nft: @FlowNetOutput.NFT, to: Address) {
        let account = getAccount(to)
        // A requester without FlowNet's own collection, or without room for the
        // record, must not be able to block the node's payment: keep the output
        // here until the requester collects it (collect_outputs.cdc).
        let room = account.storage.capacity > account.storage.used
            && account.storage.capacity - account.storage.used > UInt64(8192 + nft.prompt.utf8.length + nft.params.utf8.length)
        if room {
            // Only this project's own collection type: a collection an account
            // wrote itself could panic (refusing delivery, and with it the
            // node's payment) or call back into the marketplace.
            if let collection = account.capabilities.borrow<&FlowNetOutput.Collection>(FlowNetOutput.CollectionPublicPath) {
                collection.deposit(token: <-nft)
                return
            }
        }
        let pending = self.pendingByRequester[to] ?? []
        pending.append(nft.id)
        self.pendingByRequester[to] = pending
        let old <- self.pendingOutputs[nft.id] <- nft
        destroy old
    }

    /// The account's FLOWNET receiver, if it is FlowNet's own vault. Every
    /// payment the marketplace makes goes through it: borrowing the concrete
    /// `FlowNetToken.Vault` type means a receiver that an account wrote itself
    /// (which could re-enter the marketplace or panic) is never called; such an
    /// account is treated as having no receiver.
    access(all) view fun receiver(_ a: Address): &FlowNetToken.Vault? {
        return getAccount(a).capabilities.borrow<&FlowNetToken.Vault>(FlowNetToken.ReceiverPublicPath)
    }

    access(all) view fun statusName(_ s: TaskStatus): String {
        switch s {
            case TaskStatus.open:
                return "open"
            case TaskStatus.claimed:
                return "claimed"
            case TaskStatus.fulfilled:
                return "fulfilled"
            case TaskStatus.cancelled:
                return "cancelled"
            case TaskStatus.declined:
                return "declined"
        }
        return "expired"
    }

    /// The core's `InvalidState` message: "task {id} is {status}: cannot {action}".
    access(all) view fun invalidState(_ id: UInt64, _ action: String): String {
        return "task ".concat(id.toString()).concat(" is ")
            .concat(self.statusName(self.tasks[id]!.status)).concat(": cannot ").concat(action)
    }

    /// The deadline a task's current status runs to (claim or fulfil).
    access(all) view fun currentDeadline(_ id: UInt64): UInt64 {
        let task = self.tasks[id]!
        if task.status == TaskStatus.open {
            return task.claimDeadline
        }
        return task.fulfilDeadline ?? 0
    }

    /// An amount in units of 10^-8, exactly.
    access(all) view fun units(_ x: UFix64): UInt64 {
        let whole = UInt64(x)
        let frac = x - UFix64(whole)
        return whole * 100000000 + UInt64(frac * 100000000.0)
    }

    access(all) view fun fromUnits(_ u: UInt64): UFix64 {
        return UFix64(u / 100000000) + UFix64(u % 100000000) / 100000000.0
    }

    /// What `units` units cost at `unitPrice` per 1,000: rounded down in base
    /// units, as the core's `metered_cost`; nil where it overflows an amount.
    access(all) view fun meteredCost(_ unitPrice: UFix64, _ units: UInt64): UFix64? {
        let cost = UInt128(self.units(unitPrice)) * UInt128(units) / 1000
        if cost > UInt128(UInt64.max) {
            return nil
        }
        return self.fromUnits(UInt64(cost))
    }

    /// The core's `escrow_for` check on a submission's max units.
    access(all) view fun maxUnitsError(_ offer: OfferedModel, _ maxUnits: UInt64): String? {
        if offer.unit == 0 {
            if maxUnits != 0 {
                return "invalid input: model ".concat(offer.modelId).concat(" is priced per task: max_units must be 0")
            }
            return nil
        }
        if maxUnits == 0 || maxUnits > self.maxTaskUnits {
            return "invalid input: model ".concat(offer.modelId)
                .concat(" is priced per 1,000 tokens: max_units must be 1 to ").concat(self.maxTaskUnits.toString())
        }
        return nil
    }

    /// What a submission escrows: the offer's price, or for a metered offer
    /// what `maxUnits` cost (nil where that overflows an amount).
    access(all) view fun escrowFor(_ offer: OfferedModel, _ maxUnits: UInt64): UFix64? {
        if offer.unit == 0 {
            return offer.price
        }
        return self.meteredCost(offer.price, maxUnits)
    }

    /// Whether `uri` is a URL a node may fetch from: http:// or https://, at
    /// most maxUriBytes, printable ASCII only.
    access(all) view fun isFetchUri(_ uri: String?): Bool {
        if uri == nil {
            return false
        }
        let b = uri!.utf8
        if b.length > self.maxUriBytes {
            return false
        }
        if !self.hasPrefix(b, "http://".utf8) && !self.hasPrefix(b, "https://".utf8) {
            return false
        }
        for c in b {
            if c < 0x21 || c > 0x7e {
                return false
            }
        }
        return true
    }

    /// Formats an amount as the core does: no trailing zeros ("12", "0.5").
    access(all) view fun formatAmount(_ x: UFix64): String {
        let u = self.units(x)
        let whole = u / 100000000
        var frac = u % 100000000
        if frac == 0 {
            return whole.toString()
        }
        var digits = 8
        while frac % 10 == 0 {
            frac = frac / 10
            digits = digits - 1
        }
        var s = frac.toString()
        while s.length < digits {
            s = "0".concat(s)
        }
        return whole.toString().concat(".").concat(s)
    }

    // --- reads for scripts ---------------------------------------------------------

    access(all) view fun getInfo(): Info {
        let block = getCurrentBlock()
        return Info(
            claimWindow: self.claimWindow,
            fulfilWindow: self.fulfilWindow,
            bountyWindow: self.bountyWindow,
            faucetAmount: self.faucetAmount,
            totalMinted: FlowNetToken.totalSupply,
            escrowed: self.escrow.balance,
            bountyPools: self.bountyPools.balance,
            treasury: self.treasury.balance,
            taskCount: self.taskCount,
            nftCount: FlowNetOutput.totalSupply,
            now: UInt64(block.timestamp),
            height: block.height
        )
    }

    access(all) view fun getAccountInfo(_ a: Address): AccountInfo {
        let account = getAccount(a)
        let vault = account.capabilities.borrow<&FlowNetToken.Vault>(FlowNetToken.VaultPublicPath)
        return AccountInfo(
            address: a,
            hasVault: vault != nil,
            balance: vault?.balance ?? 0.0,
            faucetUsed: self.faucetUsed[a] ?? false,
            hasCollection: account.capabilities.exists(FlowNetOutput.CollectionPublicPath),
            hasMember: account.storage.type(at: self.MemberStoragePath) != nil,
            pendingOutputs: self.pendingByRequester[a] ?? []
        )
    }

    access(all) view fun getNode(_ owner: Address): NodeInfo? {
        return self.nodes[owner]
    }

    access(all) view fun getNodeOwners(): [Address] {
        return self.nodeOwners
    }

    access(all) view fun getTask(_ id: UInt64): TaskInfo? {
        return self.tasks[id]
    }

    access(all) view fun getTaskIdsByNode(_ node: Address): [UInt64] {
        return self.tasksByNode[node] ?? []
    }

    access(all) view fun getTaskIdsByRequester(_ requester: Address): [UInt64] {
        return self.tasksByRequester[requester] ?? []
    }

    access(all) view fun rating(task: UInt64, rater: Address): RatingInfo? {
        if let byRater = self.ratings[task] {
            return byRater[rater]
        }
        return nil
    }

    /// A task's ratings in the order they were given.
    access(all) fun getRatings(_ task: UInt64): [RatingInfo] {
        let out: [RatingInfo] = []
        if let byRater = self.ratings[task] {
            for rater in self.raters[task] ?? [] {
                out.append(byRater[rater]!)
            }
        }
        return out
    }

    access(all) view fun getPendingOutput(_ id: UInt64): &FlowNetOutput.NFT? {
        return &self.pendingOutputs[id]
    }

    // --- validation (each mirrors one check of the core) ----------------------------

    /// 1 to maxNameBytes bytes, not only whitespace, no control characters
    /// (Rust's `char::is_control`, `str::trim`).
    access(all) view fun isValidName(_ name: String): Bool {
        let bytes = name.utf8
        let b = &bytes as &[UInt8]
        if b.length == 0 || b.length > self.maxNameBytes {
            return false
        }
        var onlySpace = true
        var i = 0
        while i < b.length {
            let cp = self.codePointAt(b, i)
            let c = cp[0]
            if c < 0x20 || (c >= 0x7f && c <= 0x9f) {
                return false
            }
            if !self.isUnicodeWhitespace(c) {
                onlySpace = false
            }
            i = i + Int(cp[1])
        }
        return !onlySpace
    }

    /// The code point starting at byte `i` of valid UTF-8, and its length.
    access(all) view fun codePointAt(_ b: &[UInt8], _ i: Int): [UInt32; 2] {
        let b0 = UInt32(b[i])
        if b0 < 0x80 {
            return [b0, 1]
        }
        if b0 < 0xE0 {
            return [((b0 & 0x1F) << 6) | (UInt32(b[i + 1]) & 0x3F), 2]
        }
        if b0 < 0xF0 {
            return [((b0 & 0x0F) << 12) | ((UInt32(b[i + 1]) & 0x3F) << 6) | (UInt32(b[i + 2]) & 0x3F), 3]
        }
        return [((b0 & 0x07) << 18) | ((UInt32(b[i + 1]) & 0x3F) << 12) | ((UInt32(b[i + 2]) & 0x3F) << 6) | (UInt32(b[i + 3]) & 0x3F), 4]
    }

    /// Unicode White_Space, as Rust's `char::is_whitespace`.
    access(all) view fun isUnicodeWhitespace(_ c: UInt32): Bool {
        return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680
            || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F
            || c == 0x205F || c == 0x3000
    }

    /// The core's `Endpoint::parse`: `http://` or `https://`, then a host (a name of
    /// letters, digits, '-', '.', '_', or an IPv6 address in brackets), an optional
    /// port of up to 5 digits (at most 65535) and an optional path of non-empty
    /// segments other than "." and "..", in letters, digits and -._~% only; so no user
    /// info, query, fragment or whitespace. A reader builds its URLs from these parts.
    access(all) view fun isValidEndpoint(_ endpoint: String): Bool {
        let b = endpoint.utf8
        if b.length > self.maxEndpointBytes {
            return false
        }
        var i = 0
        if self.hasPrefix(b, "https://".utf8) {
            i = 8
        } else if self.hasPrefix(b, "http://".utf8) {
            i = 7
        } else {
            return false
        }
        // The host.
        let hostStart = i
        if i < b.length && b[i] == 91 {
            // '[' IPv6 ']': hex digits, ':' and '.'.
            i = i + 1
            while i < b.length && b[i] != 93 {
                let c = b[i]
                if !((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70) || c == 58 || c == 46) {
                    return false
                }
                i = i + 1
            }
            if i >= b.length || i == hostStart + 1 {
                return false
            }
            i = i + 1
        } else {
            while i < b.length && b[i] != 58 && b[i] != 47 {
                let c = b[i]
                if !((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c == 45 || c == 46 || c == 95) {
                    return false
                }
                i = i + 1
            }
            if i == hostStart {
                return false
            }
        }
        // The port.
        if i < b.length && b[i] == 58 {
            i = i + 1
            let portStart = i
            var port = 0
            while i < b.length && b[i] != 47 {
                let c = b[i]
                if c < 48 || c > 57 || i - portStart >= 5 {
                    return false
                }
                port = port * 10 + Int(c - 48)
                i = i + 1
            }
            if i == portStart || port > 65535 {
                return false
            }
        }
        if i == b.length {
            return true
        }
        if b[i] != 47 {
            return false
        }
        // The path: segments after '/', one trailing '/' allowed.
        var segStart = i + 1
        var segDots = 0
        var segLen = 0
        i = i + 1
        while i <= b.length {
            if i == b.length || b[i] == 47 {
                let last = i == b.length
                if segLen == 0 && !(last && segStart == i) {
                    return false
                }
                if segLen > 0 && segLen == segDots && segLen <= 2 {
                    return false
                }
                if last || (i + 1 == b.length) {
                    return true
                }
                segStart = i + 1
                segDots = 0
                segLen = 0
            } else {
                let c = b[i]
                if !((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c == 45 || c == 46 || c == 95 || c == 126 || c == 37) {
                    return false
                }
                if c == 46 {
                    segDots = segDots + 1
                }
                segLen = segLen + 1
            }
            i = i + 1
        }
        return true
    }

    access(all) view fun hasPrefix(_ b: [UInt8], _ prefix: [UInt8]): Bool {
        if b.length < prefix.length {
            return false
        }
        var i = 0
        while i < prefix.length {
            if b[i] != prefix[i] {
                return false
            }
            i = i + 1
        }
        return true
    }

    /// 1 to 64 bytes of a-z, 0-9, '.', '_' and '-' (the core's `validate_model_id`).
    access(all) view fun isValidModelId(_ id: String): Bool {
        let b = id.utf8
        if b.length == 0 || b.length > self.maxModelIdBytes {
            return false
        }
        for c in b {
            let ok = (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 46 || c == 95 || c == 45
            if !ok {
                return false
            }
        }
        return true
    }

    /// 64 lowercase hex digits.
    access(all) view fun isSha256Hex(_ s: String): Bool {
        let b = s.utf8
        if b.length != 64 {
            return false
        }
        for c in b {
            if !((c >= 48 && c <= 57) || (c >= 97 && c <= 102)) {
                return false
            }
        }
        return true
    }

    /// The first error the core would report for a node's offers, in its order.
    access(all) view fun modelsError(_ models: [OfferedModel]): String? {
        var i = 0
        while i < models.length {
            let m = models[i]
            if !self.isValidModelId(m.modelId) {
                return "invalid input: invalid model id ".concat(self.debugString(m.modelId))
                    .concat(": 1 to ").concat(self.maxModelIdBytes.toString())
                    .concat(" characters of a-z, 0-9, '.', '_' and '-'")
            }
            var j = 0
            while j < i {
                if models[j].modelId == m.modelId {
                    return "invalid input: model ".concat(m.modelId).concat(" is offered twice")
                }
                j = j + 1
            }
            if !self.isSha256Hex(m.weightsSha256) {
                return "invalid input: invalid sha256 ".concat(self.debugString(m.weightsSha256)).concat(": expected 64 hex digits")
            }
            if m.unit > 1 {
                return "invalid input: unknown price unit ".concat(m.unit.toString())
            }
            i = i + 1
        }
        return nil
    }

    access(all) view fun isValidMime(_ mime: String): Bool {
        let b = mime.utf8
        if b.length == 0 || b.length > self.maxMimeBytes {
            return false
        }
        for c in b {
            if c == 47 {
                return true
            }
        }
        return false
    }

    /// A string quoted and escaped as Rust's `{:?}` writes it, for ASCII and
    /// the C1 controls (other non-printable Unicode is written as is).
    access(all) view fun debugString(_ s: String): String {
        let hex = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f"]
        let bytes = s.utf8
        let b = &bytes as &[UInt8]
        var out = "\""
        var i = 0
        while i < b.length {
            let cp = self.codePointAt(b, i)
            let c = cp[0]
            let n = Int(cp[1])
            if c == 0 {
                out = out.concat("\\0")
            } else if c == 9 {
                out = out.concat("\\t")
            } else if c == 10 {
                out = out.concat("\\n")
            } else if c == 13 {
                out = out.concat("\\r")
            } else if c == 34 {
                out = out.concat("\\\"")
            } else if c == 92 {
                out = out.concat("\\\\")
            } else if c < 0x20 || (c >= 0x7f && c <= 0x9f) {
                out = out.concat("\\u{")
                if c >= 16 {
                    out = out.concat(hex[Int(c / 16)])
                }
                out = out.concat(hex[Int(c % 16)]).concat("}")
            } else {
                out = out.concat(String.fromUTF8(b.slice(from: i, upTo: i + n)) ?? "")
            }
            i = i + n
        }
        return out.concat("\"")
    }

    // --- JSON: whether params is one JSON object, as serde_json reads it ------------

    /// RFC 8259 as serde_json accepts it: one object, optional surrounding
    /// whitespace, valid escapes without lone surrogates, no control characters
    /// in strings, and at most 127 nested containers (serde_json's limit).
    access(all) view fun isJsonObject(_ s: String): Bool {
        let bytes = s.utf8
        let b = &bytes as &[UInt8]
        var i = self.jsonWs(b, 0)
        if i >= b.length || b[i] != 123 {
            return false
        }
        i = self.jsonValue(b, i, 0)
        if i < 0 {
            return false
        }
        return self.jsonWs(b, i) == b.length
    }

    access(self) view fun jsonWs(_ b: &[UInt8], _ start: Int): Int {
        var i = start
        while i < b.length && (b[i] == 32 || b[i] == 9 || b[i] == 10 || b[i] == 13) {
            i = i + 1
        }
        return i
    }

    /// Index after the value starting at `i`, or -1.
    access(self) view fun jsonValue(_ b: &[UInt8], _ i: Int, _ depth: Int): Int {
        if i >= b.length {
            return -1
        }
        let c = b[i]
        if c == 123 || c == 91 {
            return self.jsonContainer(b, i, depth + 1)
        }
        if c == 34 {
            return self.jsonString(b, i)
        }
        if c == 116 {
            return self.jsonLiteral(b, i, "true".utf8)
        }
        if c == 102 {
            return self.jsonLiteral(b, i, "false".utf8)
        }
        if c == 110 {
            return self.jsonLiteral(b, i, "null".utf8)
        }
        return self.jsonNumber(b, i)
    }

    access(self) view fun jsonContainer(_ b: &[UInt8], _ start: Int, _ depth: Int): Int {
        if depth >= 128 {
            return -1
        }
        let isObject = b[start] == 123
        let close: UInt8 = isObject ? 125 : 93
        var i = self.jsonWs(b, start + 1)
        if i < b.length && b[i] == close {
            return i + 1
        }
        while i < b.length {
            if isObject {
                if b[i] != 34 {
                    return -1
                }
                i = self.jsonString(b, i)
                if i < 0 {
                    return -1
                }
                i = self.jsonWs(b, i)
                if i >= b.length || b[i] != 58 {
                    return -1
                }
                i = self.jsonWs(b, i + 1)
            }
            i = self.jsonValue(b, i, depth)
            if i < 0 {
                return -1
            }
            i = self.jsonWs(b, i)
            if i >= b.length {
                return -1
            }
            if b[i] == close {
                return i + 1
            }
            if b[i] != 44 {
                return -1
            }
            i = self.jsonWs(b, i + 1)
        }
        return -1
    }

    access(self) view fun jsonLiteral(_ b: &[UInt8], _ i: Int, _ word: [UInt8]): Int {
        if i + word.length > b.length {
            return -1
        }
        var k = 0
        while k < word.length {
            if b[i + k] != word[k] {
                return -1
            }
            k = k + 1
        }
        return i + word.length
    }

    access(self) view fun isDigit(_ c: UInt8): Bool {
        return c >= 48 && c <= 57
    }

    access(self) view fun jsonNumber(_ b: &[UInt8], _ start: Int): Int {
        var i = start
        if i < b.length && b[i] == 45 {
            i = i + 1
        }
        if i >= b.length || !self.isDigit(b[i]) {
            return -1
        }
        if b[i] == 48 {
            i = i + 1
        } else {
            while i < b.length && self.isDigit(b[i]) {
                i = i + 1
            }
        }
        if i < b.length && b[i] == 46 {
            i = i + 1
            if i >= b.length || !self.isDigit(b[i]) {
                return -1
            }
            while i < b.length && self.isDigit(b[i]) {
                i = i + 1
            }
        }
        if i < b.length && (b[i] == 101 || b[i] == 69) {
            i = i + 1
            if i < b.length && (b[i] == 43 || b[i] == 45) {
                i = i + 1
            }
            if i >= b.length || !self.isDigit(b[i]) {
                return -1
            }
            while i < b.length && self.isDigit(b[i]) {
                i = i + 1
            }
        }
        return i
    }

    access(self) view fun hexValue(_ b: &[UInt8], _ i: Int): Int {
        if i + 4 > b.length {
            return -1
        }
        var v = 0
        var k = 0
        while k < 4 {
            let c = b[i + k]
            var d = -1
            if c >= 48 && c <= 57 {
                d = Int(c) - 48
            } else if c >= 97 && c <= 102 {
                d = Int(c) - 87
            } else if c >= 65 && c <= 70 {
                d = Int(c) - 55
            }
            if d < 0 {
                return -1
            }
            v = v * 16 + d
            k = k + 1
        }
        return v
    }

    access(self) view fun jsonString(_ b: &[UInt8], _ start: Int): Int {
        var i = start + 1
        while i < b.length {
            let c = b[i]
            if c == 34 {
                return i + 1
            }
            if c < 0x20 {
                return -1
            }
            if c == 92 {
                if i + 1 >= b.length {
                    return -1
                }
                let e = b[i + 1]
                if e == 117 {
                    let v = self.hexValue(b, i + 2)
                    if v < 0 {
                        return -1
                    }
                    i = i + 6
                    if v >= 0xDC00 && v <= 0xDFFF {
                        return -1
                    }
                    if v >= 0xD800 && v <= 0xDBFF {
                        // A leading surrogate must be followed by an escaped trailing one.
                        if i + 1 >= b.length || b[i] != 92 || b[i + 1] != 117 {
                            return -1
                        }
                        let low = self.hexValue(b, i + 2)
                        if low < 0xDC00 || low > 0xDFFF {
                            return -1
                        }
                        i = i + 6
                    }
                    continue
                }
                if e == 34 || e == 92 || e == 47 || e == 98 || e == 102 || e == 110 || e == 114 || e == 116 {
                    i = i + 2
                    continue
                }
                return -1
            }
            i = i + 1
        }
        return -1
    }

    init(claimWindow: UInt64, fulfilWindow: UInt64, bountyWindow: UInt64, faucetAmount: UFix64) {
        self.maxPromptBytes = 4096
        self.maxParamsBytes = 4096
        self.maxNameBytes = 64
        self.maxEndpointBytes = 256
        self.maxModelsPerNode = 32
        self.maxModelIdBytes = 64
        self.maxUriBytes = 1024
        self.maxMimeBytes = 128
        self.maxDeclineReasonBytes = 256
        self.maxInputBytes = 16777216
        self.maxTaskUnits = 1048576
        self.bountyRaters = 3
        self.nodeSharePerMille = 900
        self.treasurySharePerMille = 25

        self.claimWindow = claimWindow
        self.fulfilWindow = fulfilWindow
        self.bountyWindow = bountyWindow
        self.faucetAmount = faucetAmount

        self.MemberStoragePath = /storage/flowNetMember
        self.NodeStoragePath = /storage/flowNetNodeOperator
        self.SponsorStoragePath = /storage/flowNetSponsor

        self.taskCount = 0
        self.escrow <- FlowNetToken.createEmptyVault(vaultType: Type<@FlowNetToken.Vault>())
        self.bountyPools <- FlowNetToken.createEmptyVault(vaultType: Type<@FlowNetToken.Vault>())
        self.treasury <- FlowNetToken.createEmptyVault(vaultType: Type<@FlowNetToken.Vault>())
        self.nodes = {}
        self.nodeOwners = []
        self.tasks = {}
        self.tasksByNode = {}
        self.tasksByRequester = {}
        self.ratings = {}
        self.raters = {}
        self.faucetUsed = {}
        self.pendingOutputs <- {}
        self.pendingByRequester = {}
        self.owedRefunds = {}

        self.account.storage.save(<-create Sponsor(), to: self.SponsorStoragePath)
    }
}
