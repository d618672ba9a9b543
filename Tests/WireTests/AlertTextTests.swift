import Testing
import Wire
import Records

@Suite struct AlertTextTests {
    @Test func holdsShortTextInlineAndLongTextAsAString() {
        let short = String(repeating: "a", count: AlertText.inlineCapacity)
        #expect(AlertText(short).isInline && AlertText(short).string == short && AlertText(short).count == short.utf8.count)
        let long = short + "b"
        #expect(!AlertText(long).isInline && AlertText(long).string == long)
        #expect(AlertText().isEmpty && AlertText("").string == "")
    }

    @Test func appendingAcrossTheInlineCapacityKeepsEveryByte() {
        // Multi-byte characters straddling the boundary: the spill must not cut one.
        var t = AlertText()
        var reference = ""
        for i in 0..<100 {
            let piece = i % 3 == 0 ? "é日" : "x\(i)"
            t.append(piece); reference += piece
            #expect(t.string == reference)
            #expect(t.count == reference.utf8.count)
            #expect(t.isInline == (reference.utf8.count <= AlertText.inlineCapacity))
        }
        #expect(t == AlertText(reference))
        t.removeAll()
        #expect(t.isEmpty && t.isInline)
    }

    @Test func numbersAndAddressesAreWrittenAsInterpolationWritesThem() {
        for v: Int64 in [0, 9, 10, -1, 1_000_000, .max, .min] {
            var t = AlertText(); t.append(decimal: v)
            #expect(t.string == "\(v)")
        }
        for text in ["0.0.0.0", "10.20.3.45", "255.255.255.255", "::1", "2001:db8::7"] {
            let ip = IPAddress(text)!
            var t = AlertText(); t.append(ip)
            #expect(t.string == "\(ip)")
        }
        var t = AlertText(); t.append("static "); t.append(String("dynamic é"))
        #expect(t.string == "static dynamic é")
    }

    @Test func anAlertsECSLineIsTheSameWhateverHoldsItsText() {
        var a = Alert(time: PacketTime(seconds: 1, microseconds: 2), frame: 3, severity: 4, action: "act", ruleID: "ZW-X",
                      ruleName: "name", category: .conduit, message: "quote \" backslash \\ newline \n é")
        a.communityID = "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        var j = JSONWriter(capacity: 1024)
        a.writeECS(to: &j)
        let line = String(decoding: j.bytes, as: UTF8.self)
        #expect(line.hasSuffix(#""message":"quote \" backslash \\ newline \n é"}"#))
        #expect(line.contains(#""community_id":"1:LQU9qZlK+B5F3KDmev6m5PMibrg=""#))
        // Spilled (long) text writes the same way.
        let long = String(repeating: "z", count: 300) + " \"q\""
        a.message = long
        #expect(!a.messageText.isInline && a.message == long)
        j.reset(); a.writeECS(to: &j)
        #expect(String(decoding: j.bytes, as: UTF8.self).hasSuffix(#"\"q\""}"#))
        a.communityID = nil
        #expect(a.communityID == nil && a.communityIDText.isEmpty)
    }
}
