import Testing
import Wire
import Records
@testable import Detection

/// `OperationRules.mayRaise` is a prefilter: it may only say false where the rule switch finds nothing.
@Suite struct OperationRulesTests {
    @Test func mayRaiseCoversEveryRule() {
        var raised = 0
        for p in AppProtocol.allCases {
            for access in AccessClass.allCases {
                for fc in 0..<0x800 {
                    for broadcast in [false, true] {
                        for sub: Int32 in [-1, 0x0001, 0x0004, 0x40, 0x41, OperationRules.piServiceDelete] {
                            var op = Records.Operation(appProtocol: p, access: access, functionCode: UInt16(fc), function: "x")
                            op.broadcast = broadcast; op.subfunction = sub
                            if OperationRules.matchingRule(op) != nil {
                                raised += 1
                                #expect(OperationRules.mayRaise(op), "\(p) \(access) \(fc) \(broadcast) \(sub)")
                            }
                            #expect(OperationRules.rule(for: op) == OperationRules.matchingRule(op))
                        }
                    }
                }
            }
        }
        #expect(raised > 0)
        // The common requests pass through on the bit tests alone.
        let read = Records.Operation(appProtocol: .modbus, access: .read, functionCode: 3, function: "read_holding_registers")
        #expect(!OperationRules.mayRaise(read))
    }
}
