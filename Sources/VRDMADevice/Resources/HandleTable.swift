// SPDX-License-Identifier: Apache-2.0
// Guest-visible identifiers are minted here: a counter in [first, mask] that skips ids in use, so a
// destroyed id comes back only after the counter wraps. Ids mean nothing outside this device (no
// host object's id leaks), which is what lets device state move to another host later.

struct HandleTable<Object: AnyObject> {
    private(set) var objects: [UInt32: Object] = [:]
    private var next: UInt32
    private let first: UInt32
    private let mask: UInt32
    /// The quota: at most this many objects at once.
    let limit: UInt32
    let name: String

    init(name: String, limit: UInt32, first: UInt32 = 1, mask: UInt32 = 0x00ff_ffff) {
        self.name = name
        // More objects than ids would make `reserve` search forever.
        self.limit = min(limit, mask - first + 1)
        self.first = first
        self.mask = mask
        next = first
    }

    var count: Int { objects.count }

    /// A fresh id, or NO_RESOURCES when the quota is used up. Nothing is taken until `insert`.
    func reserve() throws(CommandError) -> UInt32 {
        guard objects.count < Int(limit) else { throw .noResources("\(name) quota \(limit) used up") }
        var id = next
        while objects[id] != nil { id = id >= mask ? first : id + 1 }
        return id
    }

    /// Checks that a well-known id outside the minted range (QP1) can be taken: quota, and not in
    /// use. Nothing is taken until `insertFixed`.
    func reserveFixed(_ id: UInt32) throws(CommandError) {
        precondition(id < first || id > mask, "\(name) id \(id) is in the minted range")
        guard objects.count < Int(limit) else { throw .noResources("\(name) quota \(limit) used up") }
        guard objects[id] == nil else { throw .busy("\(name) \(id) exists") }
    }

    /// Takes a well-known id checked by `reserveFixed`, without moving the minting counter.
    mutating func insertFixed(_ id: UInt32, _ object: Object) {
        precondition(objects[id] == nil, "\(name) id \(id) taken twice")
        objects[id] = object
    }

    mutating func insert(_ id: UInt32, _ object: Object) {
        precondition(objects[id] == nil, "\(name) id \(id) minted twice")
        objects[id] = object
        next = id >= mask ? first : id + 1
    }

    func get(_ id: UInt32) -> Object? { objects[id] }

    func lookup(_ id: UInt32) throws(CommandError) -> Object {
        guard let o = objects[id] else { throw .badHandle("no \(name) \(id)") }
        return o
    }

    @discardableResult
    mutating func remove(_ id: UInt32) -> Object? { objects.removeValue(forKey: id) }

    mutating func removeAll() { objects.removeAll() }
}
