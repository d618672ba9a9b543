import Wire

/// Longest-prefix match over IPv4 and IPv6: a binary trie in one flat array (no node objects).
///
/// IPv4 prefixes are walked on their 32 bits from one root, IPv6 prefixes on 128 bits from another,
/// so an IPv4 lookup costs at most 32 steps. Built once when a policy is compiled, then read only.
public struct PrefixTrie: Sendable {
    @usableFromInline struct Node: Sendable {
        @usableFromInline var zero: Int32 = -1
        @usableFromInline var one: Int32 = -1
        @usableFromInline var value: Int32 = -1
        init() {}
    }
    @usableFromInline var nodes: [Node] = [Node(), Node()]   // 0: IPv4 root, 1: IPv6 root

    /// An empty trie.
    public init() {}

    /// Number of nodes (for tests and the bench).
    public var nodeCount: Int { nodes.count }

    /// Stores `value` for `prefix`; returns the value it replaced, or -1.
    @discardableResult
    public mutating func insert(_ prefix: IPPrefix, value: Int32) -> Int32 {
        let v4 = prefix.isIPv4
        var node = v4 ? 0 : 1
        let start = v4 ? 96 : 0
        for i in start..<prefix.length {
            let bit = prefix.network.bit(i)
            var next = bit ? nodes[node].one : nodes[node].zero
            if next < 0 {
                next = Int32(nodes.count)
                nodes.append(Node())
                if bit { nodes[node].one = next } else { nodes[node].zero = next }
            }
            node = Int(next)
        }
        let old = nodes[node].value
        nodes[node].value = value
        return old
    }

    /// The value of the longest prefix containing `address`, or -1.
    @inlinable public func lookup(_ address: IPAddress) -> Int32 {
        var best: Int32 = -1
        if address.isIPv4 {
            let v = address.v4
            var node = 0
            var shift: UInt32 = 32
            while true {
                let n = nodes[node]
                if n.value >= 0 { best = n.value }
                if shift == 0 { break }
                shift -= 1
                let next = (v >> shift) & 1 == 1 ? n.one : n.zero
                if next < 0 { break }
                node = Int(next)
            }
        } else {
            var node = 1
            var i = 0
            while true {
                let n = nodes[node]
                if n.value >= 0 { best = n.value }
                if i == 128 { break }
                let next = address.bit(i) ? n.one : n.zero
                if next < 0 { break }
                node = Int(next); i += 1
            }
        }
        return best
    }
}
