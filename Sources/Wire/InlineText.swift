/// Up to 31 bytes of ASCII text stored inline (four words, no heap, no reference counting): Community IDs
/// and other short identifiers that are copied with per-packet context.
public struct InlineText: Hashable, Sendable {
    private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    /// Length in bytes.
    public private(set) var count: Int = 0

    /// Stores `text`, cut to 31 bytes.
    public init(_ text: String) {
        var t = text
        self = t.withUTF8 { InlineText(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Stores `bytes`, cut to 31 bytes.
    public init(bytes: UnsafeRawBufferPointer) {
        let n = min(bytes.count, 31)
        withUnsafeMutableBytes(of: &words) { w in
            for i in 0..<n { w[i] = bytes[i] }
        }
        count = n
    }

    /// An empty text.
    public init() {}

    /// Runs `body` over the bytes.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: words) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    /// The text as a `String` (allocates; for alerts and tests, not the per-packet path).
    public var string: String { withBytes { String(decoding: $0, as: UTF8.self) } }

    /// Whether the text is empty.
    public var isEmpty: Bool { count == 0 }

    public static func == (a: InlineText, b: InlineText) -> Bool {
        a.count == b.count && a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    public func hash(into h: inout Hasher) {
        h.combine(count); h.combine(words.0); h.combine(words.1); h.combine(words.2); h.combine(words.3)
    }
}
