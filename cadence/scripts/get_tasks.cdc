import "FlowNetMarketplace"

/// Tasks in id order, filtered like the core's TaskQuery: by node, by
/// requester, by status (TaskStatus raw value), with id > after, at most
/// `limit` (0: no limit).
access(all) fun main(node: Address?, requester: Address?, status: UInt8?, after: UInt64, limit: UInt32): [FlowNetMarketplace.TaskInfo] {
    var ids: [UInt64] = []
    if let n = node {
        ids = FlowNetMarketplace.getTaskIdsByNode(n)
    } else if let r = requester {
        ids = FlowNetMarketplace.getTaskIdsByRequester(r)
    } else {
        var id = after + 1
        while id <= FlowNetMarketplace.taskCount {
            ids.append(id)
            id = id + 1
        }
    }
    // The per-node and per-requester lists are in ascending id order: skip the ids
    // up to `after` by bisection, so a node that asks for what is new pays for
    // what is new, not for its whole history.
    var lo = 0
    var hi = ids.length
    while lo < hi {
        let mid = (lo + hi) / 2
        if ids[mid] <= after {
            lo = mid + 1
        } else {
            hi = mid
        }
    }
    let out: [FlowNetMarketplace.TaskInfo] = []
    var i = lo
    while i < ids.length {
        let id = ids[i]
        i = i + 1
        let task = FlowNetMarketplace.getTask(id)!
        if requester != nil && task.requester != requester! {
            continue
        }
        if status != nil && task.status.rawValue != status! {
            continue
        }
        out.append(task)
        if limit > 0 && out.length >= Int(limit) {
            break
        }
    }
    return out
}
