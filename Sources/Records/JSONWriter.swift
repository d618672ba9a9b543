import Wire

/// The bytes a `JSONWriter` has written: one block, grown by doubling, freed with the last writer holding it.
@usableFromInline final class JSONStorage {
    @usableFromInline @exclusivity(unchecked) var base: UnsafeMutablePointer<UInt8>
    @usableFromInline @exclusivity(unchecked) var count = 0
    @usableFromInline @exclusivity(unchecked) var capacity: Int

    @usableFromInline init(capacity: Int) {
        self.capacity = max(64, capacity)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// A storage of its own with the same bytes (a writer copied, then written to).
    @usableFromInline func copy() -> JSONStorage {
        let c = JSONStorage(capacity: capacity)
        c.base.update(from: base, count: count); c.count = count
        return c
    }

    /// Makes room for `n` more bytes.
    @usableFromInline @inline(never) func grow(toHold n: Int) {
        var c = capacity
        while c &- count < n { c &*= 2 }
        let b = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
        b.update(from: base, count: count)
        base.deallocate()
        base = b; capacity = c
    }
}

/// Builds one JSON text into a reusable byte buffer, placing commas and colons itself.
///
/// Keys are `StaticString`s, so building a record allocates nothing once the buffer has grown to
/// its working size. Strings are escaped per RFC 8259; bytes that are not valid UTF-8 are written
/// as `\u00XX` so that output stays valid JSON whatever a capture holds.
///
/// Each piece (a key with its quotes and colon, a number, an address) is written straight into the buffer after one
/// check for room: appended to a `[UInt8]` piece by piece, through `append(contentsOf:)` and `memcpy` for every few
/// bytes, an alert line cost ~15,000 instructions. The writer keeps value semantics: a copy shares the buffer until
/// either writes.
public struct JSONWriter {
    @usableFromInline var storage: JSONStorage
    @usableFromInline var needsComma = false

    /// Creates a writer with `capacity` bytes reserved.
    public init(capacity: Int = 4096) { storage = JSONStorage(capacity: capacity) }

    /// The text written so far, as an array (a copy: `withBytes` reads it in place).
    public var bytes: [UInt8] { Array(UnsafeBufferPointer(start: storage.base, count: storage.count)) }

    /// Bytes written so far.
    public var count: Int { storage.count }

    /// Calls `body` with the text written so far, in place (valid during the call only).
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage.base, count: storage.count))
    }

    /// Appends one byte outside the JSON structure (a record's closing newline).
    @inlinable public mutating func appendByte(_ b: UInt8) { put(1) { $0.pointee = b; return 1 } }

    /// Empties the buffer, keeping its capacity.
    @inlinable public mutating func reset() {
        if !isKnownUniquelyReferenced(&storage) { storage = JSONStorage(capacity: storage.capacity) }
        storage.count = 0; needsComma = false
    }

    /// Room for `n` more bytes at the end of a buffer this writer alone holds: where they go.
    @inlinable @inline(__always) mutating func reserve(_ n: Int) -> UnsafeMutablePointer<UInt8> {
        if _slowPath(!isKnownUniquelyReferenced(&storage)) { storage = storage.copy() }
        if _slowPath(storage.capacity &- storage.count < n) { storage.grow(toHold: n) }
        return storage.base + storage.count
    }

    /// Writes what `body` writes (at most `n` bytes; it returns how many).
    @inlinable @inline(__always) mutating func put(_ n: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Int) {
        let p = reserve(n)
        storage.count &+= body(p)
    }

    /// `put` after the comma when one is due.
    @inlinable @inline(__always) mutating func separated(_ n: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Int) {
        let comma = needsComma
        put(n &+ 1) { p in
            if comma { p.pointee = UInt8(ascii: ","); return 1 &+ body(p + 1) }
            return body(p)
        }
    }

    @inlinable mutating func separate() { if needsComma { appendByte(UInt8(ascii: ",")) } }

    /// Opens an object `{`.
    @inlinable public mutating func beginObject() { separated(1) { $0.pointee = UInt8(ascii: "{"); return 1 }; needsComma = false }
    /// Closes an object `}`.
    @inlinable public mutating func endObject() { appendByte(UInt8(ascii: "}")); needsComma = true }
    /// Opens an array `[`.
    @inlinable public mutating func beginArray() { separated(1) { $0.pointee = UInt8(ascii: "["); return 1 }; needsComma = false }
    /// Closes an array `]`.
    @inlinable public mutating func endArray() { appendByte(UInt8(ascii: "]")); needsComma = true }

    /// Writes `"key":`.
    @inlinable public mutating func key(_ k: StaticString) {
        quoted(k, then: UInt8(ascii: ":"))
        needsComma = false
    }

    /// `,` when due, then `"text"` and `suffix` (0: none).
    @inlinable @inline(__always) mutating func quoted(_ text: StaticString, then suffix: UInt8) {
        text.withUTF8Buffer { t in
            separated(t.count &+ 3) { p in
                let n = JSONWriter.quote(t, at: p)
                if suffix == 0 { return n }
                p[n] = suffix
                return n &+ 1
            }
        }
    }

    /// Writes `"text"` at `p` (text that needs no escaping); returns how many bytes (its count + 2).
    @usableFromInline @inline(__always)
    static func quote(_ text: UnsafeBufferPointer<UInt8>, at p: UnsafeMutablePointer<UInt8>) -> Int {
        let n = text.count
        p.pointee = UInt8(ascii: "\"")
        if n > 0 { copy(UnsafeRawPointer(text.baseAddress!), to: UnsafeMutableRawPointer(p + 1), count: n) }
        p[n &+ 1] = UInt8(ascii: "\"")
        return n &+ 2
    }

    /// Writes `"key":` for a key known only at run time (escaped).
    public mutating func key(_ k: String) {
        separate(); writeEscaped(k.utf8); appendByte(UInt8(ascii: ":")); needsComma = false
    }

    /// Writes a static string value (assumed to need no escaping: table names, enum names).
    @inlinable public mutating func string(_ s: StaticString) {
        quoted(s, then: 0)
        needsComma = true
    }

    /// Writes a string value, escaped.
    public mutating func string(_ s: String) { separate(); writeEscaped(s.utf8); needsComma = true }

    /// Writes inline text as a string value, escaped.
    public mutating func string(_ t: InlineText) { separate(); t.withBytes { writeEscaped($0) }; needsComma = true }
    /// An alert text as a JSON string.
    public mutating func string(_ t: AlertText) { separate(); t.withBytes { writeEscaped($0) }; needsComma = true }

    /// Writes raw bytes from the wire as a string value, escaped (invalid UTF-8 → `\u00XX`).
    public mutating func string(bytes view: ByteView) {
        separate(); writeEscaped(view.raw); needsComma = true
    }

    /// Writes bytes as a lowercase hex string value.
    public mutating func hex(_ view: ByteView) {
        let raw = view.raw
        separated(2 &* raw.count &+ 2) { p in
            let digits: StaticString = "0123456789abcdef"
            p.pointee = UInt8(ascii: "\"")
            var i = 1
            for b in raw { p[i] = digits.utf8Start[Int(b >> 4)]; p[i &+ 1] = digits.utf8Start[Int(b & 0xF)]; i &+= 2 }
            p[i] = UInt8(ascii: "\"")
            return i &+ 1
        }
        needsComma = true
    }

    /// Writes a signed integer.
    @inlinable public mutating func int(_ v: Int64) {
        separated(21) { JSONWriter.writeSigned(v, at: $0) }
        needsComma = true
    }

    /// Writes `v` in decimal at `p`, with its sign; returns how many bytes (at most 20).
    @usableFromInline @inline(__always)
    static func writeSigned(_ v: Int64, at p: UnsafeMutablePointer<UInt8>) -> Int {
        if v < 0 { p.pointee = UInt8(ascii: "-"); return 1 &+ StackText.writeDecimal(UInt64(bitPattern: 0 &- v), at: p + 1) }
        return StackText.writeDecimal(UInt64(v), at: p)
    }

    /// Writes a static text's bytes at `p` as they are; returns how many.
    @usableFromInline @inline(__always)
    static func write(_ text: StaticString, at p: UnsafeMutablePointer<UInt8>) -> Int {
        text.withUTF8Buffer { t in
            if t.count > 0 { p.update(from: t.baseAddress!, count: t.count) }
            return t.count
        }
    }
    /// Writes a signed integer.
    @inlinable public mutating func int(_ v: Int) { int(Int64(v)) }
    /// Writes an unsigned integer.
    @inlinable public mutating func uint(_ v: UInt64) { separated(20) { StackText.writeDecimal(v, at: $0) }; needsComma = true }

    /// Writes a number with six decimals from an integer count of millionths (e.g. seconds from µs).
    @inlinable public mutating func fixed6(_ millionths: Int64) {
        separated(28) { p in
            var v = millionths, i = 0
            if v < 0 { p.pointee = UInt8(ascii: "-"); v = 0 &- v; i = 1 }
            i &+= StackText.writeDecimal(UInt64(v / 1_000_000), at: p + i)
            p[i] = UInt8(ascii: "."); i &+= 1
            var frac = v % 1_000_000, div: Int64 = 100_000
            while div > 0 { p[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: frac / div); frac %= div; div /= 10; i &+= 1 }
            return i
        }
        needsComma = true
    }

    /// Writes a floating-point value (allocates through `description`; not for the per-packet path).
    public mutating func double(_ v: Double) {
        guard v.isFinite else { null(); return }
        separate(); appendBytes(v.description.utf8); needsComma = true
    }

    /// Writes `true` or `false`.
    @inlinable public mutating func bool(_ v: Bool) {
        // Not two array literals: swiftc 6.3 names their outlined static copies per module (…Tv_, …Tv0_)
        // in different orders, the linker keeps one copy, and every inlined call wrote the opposite value.
        let text: StaticString = v ? "true" : "false"
        separated(5) { JSONWriter.write(text, at: $0) }
        needsComma = true
    }

    /// Writes `null`.
    public mutating func null() {
        let text: StaticString = "null"
        separated(4) { JSONWriter.write(text, at: $0) }
        needsComma = true
    }

    /// Writes an IP address as a string value.
    public mutating func ip(_ a: IPAddress) {
        if a.isIPv4 {
            separated(17) { p in
                p.pointee = UInt8(ascii: "\"")
                let n = a.writeIPv4(at: p + 1)
                p[n &+ 1] = UInt8(ascii: "\"")
                return n &+ 2
            }
        } else {
            var text: [UInt8] = []
            a.write(to: &text)
            separate(); appendByte(UInt8(ascii: "\"")); appendBytes(text); appendByte(UInt8(ascii: "\""))
        }
        needsComma = true
    }

    /// Writes a packet time as an RFC 3339 string value.
    public mutating func time(_ t: PacketTime) {
        separated(29) { p in
            p.pointee = UInt8(ascii: "\"")
            let n = t.writeRFC3339(at: p + 1)
            p[n &+ 1] = UInt8(ascii: "\"")
            return n &+ 2
        }
        needsComma = true
    }

    /// Appends an already-encoded JSON value verbatim.
    public mutating func rawValue(_ json: some Sequence<UInt8>) { separate(); appendBytes(json); needsComma = true }

    /// Appends `source`'s bytes as they are.
    @usableFromInline mutating func appendBytes(_ source: some Sequence<UInt8>) {
        let done: Void? = source.withContiguousStorageIfAvailable { b in
            guard let start = b.baseAddress else { return }
            put(b.count) { p in p.update(from: start, count: b.count); return b.count }
        }
        if done == nil { for b in source { appendByte(b) } }
    }

    // Convenience: key and value in one call, in one piece (the record writers' most common call: a key and a value
    // written apart took two checks for room and two calls).
    /// `"k": v`.
    public mutating func field(_ k: StaticString, _ v: Int) {
        keyed(k, room: 21) { JSONWriter.writeSigned(Int64(v), at: $0) }
    }
    /// `"k": v`.
    public mutating func field(_ k: StaticString, _ v: UInt64) { keyed(k, room: 20) { StackText.writeDecimal(v, at: $0) } }
    /// `"k": v`.
    public mutating func field(_ k: StaticString, _ v: Bool) {
        let text: StaticString = v ? "true" : "false"   // (not array literals: see `bool(_:)`)
        keyed(k, room: 5) { JSONWriter.write(text, at: $0) }
    }
    /// `"k": "v"`.
    public mutating func field(_ k: StaticString, _ v: StaticString) {
        v.withUTF8Buffer { t in keyed(k, room: t.count &+ 2) { JSONWriter.quote(t, at: $0) } }
    }

    /// `,` when due, `"k":`, then what `body` writes (at most `room` bytes): a field in one piece.
    @inline(__always) mutating func keyed(_ k: StaticString, room: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Int) {
        k.withUTF8Buffer { t in
            separated(t.count &+ 3 &+ room) { p in
                let n = JSONWriter.quote(t, at: p)
                p[n] = UInt8(ascii: ":")
                return n &+ 1 &+ body(p + (n &+ 1))
            }
        }
        needsComma = true
    }
    /// `"k": "v"`.
    public mutating func field(_ k: StaticString, _ v: String) { key(k); string(v) }

    @usableFromInline mutating func writeEscaped<C: Collection>(_ s: C) where C.Element == UInt8 {
        // Fast path: text that needs no escaping at all (names, addresses, most values) is copied in one go.
        let copied = s.withContiguousStorageIfAvailable { buffer -> Bool in
            guard JSONWriter.isPlain(UnsafeRawPointer(buffer.baseAddress), count: buffer.count) else { return false }
            put(buffer.count &+ 2) { JSONWriter.quote(buffer, at: $0) }
            return true
        } ?? false
        if copied { return }
        appendByte(UInt8(ascii: "\""))
        var it = s.makeIterator()
        var pending: [UInt8] = []   // only used for multi-byte sequences
        while let b = it.next() {
            if b < 0x80 {
                switch b {
                case 0x22: appendByte(0x5C); appendByte(0x22)
                case 0x5C: appendByte(0x5C); appendByte(0x5C)
                case 0x0A: appendByte(0x5C); appendByte(UInt8(ascii: "n"))
                case 0x0D: appendByte(0x5C); appendByte(UInt8(ascii: "r"))
                case 0x09: appendByte(0x5C); appendByte(UInt8(ascii: "t"))
                case 0..<0x20, 0x7F: escapeByte(b)
                default: appendByte(b)
                }
                continue
            }
            // Validate one UTF-8 sequence; copy it if valid, else escape its lead byte.
            let need = b >= 0xF0 && b <= 0xF4 ? 3 : b >= 0xE0 && b <= 0xEF ? 2 : b >= 0xC2 && b <= 0xDF ? 1 : -1
            if need < 0 { escapeByte(b); continue }
            pending.removeAll(keepingCapacity: true); pending.append(b)
            var ok = true
            for _ in 0..<need {
                guard let c = it.next() else { ok = false; break }
                pending.append(c)
                if c & 0xC0 != 0x80 { ok = false; break }
            }
            if ok { appendBytes(pending) } else { for p in pending { if p < 0x80 && p >= 0x20 && p != 0x22 && p != 0x5C && p != 0x7F { appendByte(p) } else { escapeByte(p) } } }
        }
        appendByte(UInt8(ascii: "\""))
    }

    /// Whether none of the `count` bytes at `start` needs escaping (a control byte, DEL, `"`, `\\`, or any byte of a
    /// multi-byte sequence, which the slow path validates). Eight bytes a step, by word arithmetic, the last step
    /// overlapping the one before (or, below eight bytes, the bytes read into a word of plain letters): byte by byte
    /// this was ~6 instructions a byte of the ~25 strings of every alert.
    @usableFromInline static func isPlain(_ start: UnsafeRawPointer?, count: Int) -> Bool {
        guard let p = start, count > 0 else { return true }
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        // A byte of `x` is zero: `(x - ones) & ~x & highs` is non-zero (exact as to whether any is).
        @inline(__always) func hasZero(_ x: UInt64) -> Bool { (x &- ones) & ~x & highs != 0 }
        @inline(__always) func plain(_ x: UInt64) -> Bool {
            // With no high bit set, `x - 0x20…` borrows into a byte's high bit exactly when some byte is below 0x20.
            !(x & highs != 0 || (x &- ones &* 0x20) & ~x & highs != 0
              || hasZero(x ^ (ones &* 0x22)) || hasZero(x ^ (ones &* 0x5C)) || hasZero(x ^ (ones &* 0x7F)))
        }
        if count < 8 {
            var x = ones &* 0x41, k = 0
            if count & 4 != 0 { x = x & ~0xFFFF_FFFF | UInt64(p.loadUnaligned(as: UInt32.self)); k = 4 }
            if count & 2 != 0 {
                x = x & ~(0xFFFF << UInt64(8 &* k)) | UInt64(p.loadUnaligned(fromByteOffset: k, as: UInt16.self)) << UInt64(8 &* k)
                k &+= 2
            }
            if count & 1 != 0 { x = x & ~(0xFF << UInt64(8 &* k)) | UInt64(p.load(fromByteOffset: k, as: UInt8.self)) << UInt64(8 &* k) }
            return plain(x)
        }
        var i = 0
        while i &+ 8 <= count {
            if !plain(p.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { return false }
            i &+= 8
        }
        return i == count || plain(p.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self))
    }

    /// Copies `count` bytes from `source` to `target`; short runs word by word, inline (a `memcpy` call cost more than
    /// the copy for the few bytes of most strings).
    @usableFromInline @inline(__always)
    static func copy(_ source: UnsafeRawPointer, to target: UnsafeMutableRawPointer, count: Int) {
        if count > 32 { target.copyMemory(from: source, byteCount: count); return }
        if count >= 8 {
            var i = 0
            while i &+ 8 <= count { target.storeBytes(of: source.loadUnaligned(fromByteOffset: i, as: UInt64.self), toByteOffset: i, as: UInt64.self); i &+= 8 }
            if i < count {
                target.storeBytes(of: source.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self), toByteOffset: count &- 8, as: UInt64.self)
            }
            return
        }
        var k = 0
        if count & 4 != 0 { target.storeBytes(of: source.loadUnaligned(as: UInt32.self), as: UInt32.self); k = 4 }
        if count & 2 != 0 { target.storeBytes(of: source.loadUnaligned(fromByteOffset: k, as: UInt16.self), toByteOffset: k, as: UInt16.self); k &+= 2 }
        if count & 1 != 0 { target.storeBytes(of: source.load(fromByteOffset: k, as: UInt8.self), toByteOffset: k, as: UInt8.self) }
    }

    @usableFromInline mutating func escapeByte(_ b: UInt8) {
        put(6) { p in
            let digits: StaticString = "0123456789abcdef"
            p[0] = 0x5C; p[1] = UInt8(ascii: "u"); p[2] = UInt8(ascii: "0"); p[3] = UInt8(ascii: "0")
            p[4] = digits.utf8Start[Int(b >> 4)]; p[5] = digits.utf8Start[Int(b & 0xF)]
            return 6
        }
    }
}
