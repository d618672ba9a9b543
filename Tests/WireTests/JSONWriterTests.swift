import Testing
import Foundation
import Wire
import Records

/// The escaping a JSON string value must get, byte by byte (what `JSONWriter` did before its word-at-a-time scan),
/// for text that is valid UTF-8 apart from the one byte planted in it.
private func referenceEscaped(_ bytes: [UInt8]) -> String {
    var out = "\""
    var i = 0
    while i < bytes.count {
        let b = bytes[i]
        switch b {
        case 0x22: out += "\\\""
        case 0x5C: out += "\\\\"
        case 0x0A: out += "\\n"
        case 0x0D: out += "\\r"
        case 0x09: out += "\\t"
        case 0..<0x20, 0x7F, 0x80...: out += String(format: "\\u00%02x", b)
        default: out += String(UnicodeScalar(b))
        }
        i += 1
    }
    return out + "\""
}

/// Every length up to 40 (below, at and past the 8-byte steps and the 32-byte inline copy) with each byte that needs
/// escaping planted at every position: the word-at-a-time scan must find it wherever it is, and plain text of every
/// length must be copied whole.
@Test(arguments: [UInt8(0x00), 0x01, 0x09, 0x0A, 0x1F, 0x22, 0x5C, 0x7F, 0x80, 0xFF])
func escapingFindsTheSpecialByteAtEveryPositionAndLength(special: UInt8) {
    for length in 0...40 {
        let plain = (0..<length).map { UInt8(ascii: "a") &+ UInt8($0 % 26) }
        var w = JSONWriter()
        ByteView.with(plain) { w.string(bytes: $0) }
        #expect(String(decoding: w.bytes, as: UTF8.self) == referenceEscaped(plain), "plain, length \(length)")
        for position in 0..<length {
            var text = plain
            text[position] = special
            var w = JSONWriter()
            ByteView.with(text) { w.string(bytes: $0) }
            #expect(String(decoding: w.bytes, as: UTF8.self) == referenceEscaped(text), "length \(length), position \(position)")
        }
    }
}

/// Bytes just inside the plain range next to ones just outside it (0x20 and 0x7E are plain; 0x21, 0x23, 0x5B and
/// 0x5D neighbour the escaped quote and backslash).
@Test func escapingKeepsTheNeighboursOfSpecialBytes() {
    let text: [UInt8] = [0x20, 0x21, 0x23, 0x5B, 0x5D, 0x7E, 0x20, 0x7E, 0x21]
    var w = JSONWriter()
    ByteView.with(text) { w.string(bytes: $0) }
    #expect(String(decoding: w.bytes, as: UTF8.self) == "\" !#[]~ ~!\"")
}

@Test(arguments: [
    (Int64(0), "0"), (9, "9"), (10, "10"), (-1, "-1"), (1_234_567_890_123, "1234567890123"),
    (Int64.max, "9223372036854775807"), (Int64.min, "-9223372036854775808"),
])
func integersAreWrittenWhole(value: Int64, text: String) {
    let millionths = value == Int64.min ? -1 : value
    let fraction = String(millionths.magnitude % 1_000_000)
    let fixed = (millionths < 0 ? "-" : "") + String(millionths.magnitude / 1_000_000) + "."
        + String(repeating: "0", count: 6 - fraction.count) + fraction
    var w = JSONWriter()
    w.beginArray(); w.int(value); w.uint(UInt64.max); w.fixed6(millionths); w.endArray()
    #expect(String(decoding: w.bytes, as: UTF8.self) == "[\(text),18446744073709551615,\(fixed)]")
}

@Test func addressesAndTimesAreQuotedStrings() {
    var w = JSONWriter()
    w.beginObject()
    w.key("a"); w.ip(IPAddress("255.255.255.255")!)
    w.key("b"); w.ip(IPAddress("0.0.0.0")!)
    w.key("c"); w.ip(IPAddress("2001:db8::1")!)
    w.key("t"); w.time(PacketTime(seconds: 1_704_067_200, microseconds: 5))
    w.endObject()
    #expect(String(decoding: w.bytes, as: UTF8.self)
            == #"{"a":"255.255.255.255","b":"0.0.0.0","c":"2001:db8::1","t":"2024-01-01T00:00:00.000005Z"}"#)
}

/// A writer that starts small grows as it writes, and keeps what it wrote.
@Test func aSmallWriterGrows() {
    var w = JSONWriter(capacity: 1)
    var expected = "["
    w.beginArray()
    for i in 0..<2_000 {
        let text = String(repeating: "x", count: i % 70)
        w.string(text)
        expected += (i == 0 ? "" : ",") + "\"\(text)\""
    }
    w.endArray()
    expected += "]"
    #expect(w.count == expected.utf8.count)
    #expect(String(decoding: w.bytes, as: UTF8.self) == expected)
}

/// A copy of a writer is a value of its own: what one writes afterwards the other does not see.
@Test func aCopiedWriterIsIndependent() {
    var a = JSONWriter()
    a.beginObject(); a.field("k", 1)
    var b = a
    b.field("only_b", 2); b.endObject()
    a.field("only_a", 3); a.endObject()
    #expect(String(decoding: a.bytes, as: UTF8.self) == #"{"k":1,"only_a":3}"#)
    #expect(String(decoding: b.bytes, as: UTF8.self) == #"{"k":1,"only_b":2}"#)
    var c = a
    c.reset()
    #expect(c.count == 0)
    #expect(String(decoding: a.bytes, as: UTF8.self) == #"{"k":1,"only_a":3}"#)
    a.withBytes { #expect($0.count == a.count) }
}

/// Each `field` overload writes its key and value in one piece, with the comma only between fields.
@Test func fieldsOfEveryKindAreSeparatedByCommas() {
    var w = JSONWriter()
    w.beginObject()
    w.field("i", -42); w.field("z", 0); w.field("u", UInt64.max); w.field("t", true); w.field("f", false)
    w.field("s", "static"); w.field("e", "" as StaticString); w.field("d", "dyn\"amic")
    w.key("o"); w.beginObject(); w.field("n", Int.min); w.endObject()
    w.endObject()
    #expect(String(decoding: w.bytes, as: UTF8.self)
            == #"{"i":-42,"z":0,"u":18446744073709551615,"t":true,"f":false,"s":"static","e":"","d":"dyn\"amic","o":{"n":-9223372036854775808}}"#)
}
