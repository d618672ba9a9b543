import Testing
import Foundation
import Wire
import Records

@Test(arguments: [
    (Int64(0), Int32(0), "1970-01-01T00:00:00.000000Z"),
    (Int64(1_704_067_200), Int32(123_456), "2024-01-01T00:00:00.123456Z"),
    (Int64(951_782_400), Int32(1), "2000-02-29T00:00:00.000001Z"),
])
func rfc3339(seconds: Int64, micros: Int32, expected: String) {
    #expect(PacketTime(seconds: seconds, microseconds: micros).rfc3339 == expected)
}

@Test(arguments: ["10.0.0.1", "255.255.255.255", "2001:db8::1", "::1", "fe80::1:2:3:4", "2001:db8:0:1:1:1:1:1", "::"])
func ipRoundTrip(text: String) {
    #expect(IPAddress(text)?.description == text)
}

@Test func jsonEscapesHostileStrings() {
    var w = JSONWriter()
    w.beginObject(); w.field("k", "a\"b\\c\nd\u{1}é"); w.endObject()
    #expect(String(decoding: w.bytes, as: UTF8.self) == #"{"k":"a\"b\\c\nd\u0001é"}"#)
}

@Test func jsonEscapesInvalidUTF8() {
    var w = JSONWriter()
    ByteView.with([0x41, 0xFF, 0xC3]) { w.string(bytes: $0) }
    #expect(String(decoding: w.bytes, as: UTF8.self) == #""A\u00ff\u00c3""#)
}

@Test(arguments: ["plain ascii value", "", "tab\there", "quote\"and\\backslash", "ünïcödé", "ctrl\u{7}"])
func jsonEscapingRoundTripsThroughFoundation(text: String) throws {
    var w = JSONWriter()
    w.beginObject(); w.field("k", text); w.endObject()
    let decoded = try JSONSerialization.jsonObject(with: Data(w.bytes)) as? [String: String]
    #expect(decoded?["k"] == text)
}
