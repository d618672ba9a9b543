// Crafted PDUs for every function code, request and response, checked field by field through the JSON
// the dissector writes. Vectors follow the examples of Modbus Application Protocol V1.1b3 §6 where the
// spec gives one; hex is grouped by field.
import Testing
import Records
import Wire
@testable import Modbus

struct PDUCase: Sendable, CustomTestStringConvertible {
    let name: String
    let hex: String
    let json: String
    let problems: ModbusPDUProblems
    init(_ name: String, _ hex: String, _ json: String, _ problems: ModbusPDUProblems = []) {
        self.name = name; self.hex = hex; self.json = json; self.problems = problems
    }
    var testDescription: String { name }
}

let requestCases: [PDUCase] = [
    PDUCase("FC1 read coils", "01 0013 0013", #"{"address":19,"quantity":19}"#),
    PDUCase("FC2 read discrete inputs", "02 00C4 0016", #"{"address":196,"quantity":22}"#),
    PDUCase("FC3 read holding registers", "03 006B 0003", #"{"address":107,"quantity":3}"#),
    PDUCase("FC4 read input registers", "04 0008 0001", #"{"address":8,"quantity":1}"#),
    PDUCase("FC5 write single coil on", "05 00AC FF00", #"{"address":172,"value":65280,"coil":true}"#),
    PDUCase("FC5 write single coil off", "05 00AC 0000", #"{"address":172,"value":0,"coil":false}"#),
    PDUCase("FC6 write single register", "06 0001 0003", #"{"address":1,"value":3}"#),
    PDUCase("FC7 read exception status", "07", "{}"),
    PDUCase("FC8 return query data", "08 0000 A537",
            #"{"subfunction":0,"subfunction_name":"return_query_data","values":[42295]}"#),
    PDUCase("FC8 restart communications", "08 0001 FF00",
            #"{"subfunction":1,"subfunction_name":"restart_communications_option","values":[65280]}"#),
    PDUCase("FC8 odd data", "08 0003 0A", #"{"subfunction":3,"subfunction_name":"change_ascii_input_delimiter","data":"0a"}"#),
    PDUCase("FC11 get comm event counter", "0B", "{}"),
    PDUCase("FC12 get comm event log", "0C", "{}"),
    PDUCase("FC15 write multiple coils", "0F 0013 000A 02 CD01",
            #"{"address":19,"quantity":10,"byte_count":2,"values":[1,0,1,1,0,0,1,1,1,0]}"#),
    PDUCase("FC16 write multiple registers", "10 0001 0002 04 000A 0102",
            #"{"address":1,"quantity":2,"byte_count":4,"values":[10,258]}"#),
    PDUCase("FC17 report server id", "11", "{}"),
    PDUCase("FC20 read file record", "14 0E 06 0004 0001 0002 06 0003 0009 0002",
            #"{"byte_count":14,"records":[{"reference_type":6,"file_number":4,"record_number":1,"record_length":2},{"reference_type":6,"file_number":3,"record_number":9,"record_length":2}]}"#),
    PDUCase("FC21 write file record", "15 0D 06 0004 0007 0003 06AF 04BE 100D",
            #"{"byte_count":13,"records":[{"reference_type":6,"file_number":4,"record_number":7,"record_length":3,"values":[1711,1214,4109]}]}"#),
    PDUCase("FC22 mask write register", "16 0004 00F2 0025", #"{"address":4,"and_mask":242,"or_mask":37}"#),
    PDUCase("FC23 read/write multiple registers", "17 0003 0006 000E 0003 06 00FF 00FF 00FF",
            #"{"read_address":3,"read_quantity":6,"write_address":14,"write_quantity":3,"byte_count":6,"values":[255,255,255]}"#),
    PDUCase("FC24 read FIFO queue", "18 04DE", #"{"address":1246}"#),
    PDUCase("FC43/14 read device identification", "2B 0E 01 00",
            #"{"mei_type":14,"mei_name":"read_device_identification","read_device_id_code":1,"read_device_id":"basic","object_id":0}"#),
    PDUCase("FC43/14 specific object", "2B 0E 04 05",
            #"{"mei_type":14,"mei_name":"read_device_identification","read_device_id_code":4,"read_device_id":"specific","object_id":5}"#),
    PDUCase("FC43/13 CANopen", "2B 0D 0102", #"{"mei_type":13,"mei_name":"canopen_general_reference","data":"0102"}"#),
    PDUCase("FC90 UMAS read id", "5A 00 02", #"{"pairing_key":0,"umas_function":2,"umas_function_name":"read_id"}"#),
    PDUCase("FC90 UMAS stop PLC", "5A 01 41 FF00",
            #"{"pairing_key":1,"umas_function":65,"umas_function_name":"stop_plc","data":"ff00"}"#),
    PDUCase("FC65 user-defined", "41 0102", #"{"data":"0102"}"#),
    PDUCase("FC125 firmware replacement", "7D 00", #"{"data":"00"}"#),
    PDUCase("FC0 unassigned", "00 0000 0000", #"{"data":"00000000"}"#, .unknownFunction),
    // Spec limits.
    PDUCase("FC3 126 registers", "03 0000 007E", #"{"address":0,"quantity":126}"#, .illegalQuantity),
    PDUCase("FC1 2001 coils", "01 0000 07D1", #"{"address":0,"quantity":2001}"#, .illegalQuantity),
    PDUCase("FC1 zero coils", "01 0000 0000", #"{"address":0,"quantity":0}"#, .illegalQuantity),
    PDUCase("FC3 past address 65535", "03 FFFF 0002", #"{"address":65535,"quantity":2}"#, .illegalQuantity),
    PDUCase("FC16 124 registers", "10 0000 007C F8" + String(repeating: "0000", count: 124),
            #"{"address":0,"quantity":124,"byte_count":248,"values":["# + Array(repeating: "0", count: 124).joined(separator: ",") + "]}",
            .illegalQuantity),
    PDUCase("FC23 122 write registers", "17 0000 0001 0000 007A F4" + String(repeating: "0000", count: 122),
            #"{"read_address":0,"read_quantity":1,"write_address":0,"write_quantity":122,"byte_count":244,"values":["#
                + Array(repeating: "0", count: 122).joined(separator: ",") + "]}", .illegalQuantity),
    PDUCase("FC5 bad coil value", "05 0001 1234", #"{"address":1,"value":4660}"#, .badCoilValue),
    PDUCase("FC15 byte count too small", "0F 0013 000A 01 CD",
            #"{"address":19,"quantity":10,"byte_count":1,"values":[1,0,1,1,0,0,1,1]}"#, .byteCountMismatch),
    PDUCase("FC16 byte count beyond the PDU", "10 0001 0002 04 000A",
            #"{"address":1,"quantity":2,"byte_count":4,"values":[10]}"#, .byteCountMismatch),
    PDUCase("FC20 byte count not a multiple of 7", "14 08 06 0004 0001 0002 00",
            #"{"byte_count":8,"records":[{"reference_type":6,"file_number":4,"record_number":1,"record_length":2}]}"#, .byteCountMismatch),
    PDUCase("FC21 record longer than the byte count", "15 09 06 0004 0007 0003 06AF",
            #"{"byte_count":9,"records":[{"reference_type":6,"file_number":4,"record_number":7,"record_length":3,"values":[1711]}]}"#,
            .byteCountMismatch),
    PDUCase("FC3 truncated", "03 0000 00", #"{"address":0}"#, .badLength),
    PDUCase("FC3 trailing byte", "03 0000 0001 00", #"{"address":0,"quantity":1}"#, .badLength),
    PDUCase("FC43/14 bad read code", "2B 0E 07 00",
            #"{"mei_type":14,"mei_name":"read_device_identification","read_device_id_code":7,"read_device_id":"reserved","object_id":0}"#,
            .illegalQuantity),
    PDUCase("FC8 without sub-function", "08 00", "{}", .badLength),
]

let responseCases: [PDUCase] = [
    PDUCase("FC1 without request: whole bytes", "01 03 CD6B05",
            #"{"byte_count":3,"values":[1,0,1,1,0,0,1,1,1,1,0,1,0,1,1,0,1,0,1,0,0,0,0,0]}"#),
    PDUCase("FC3 registers", "03 06 022B 0000 0064", #"{"byte_count":6,"values":[555,0,100]}"#),
    PDUCase("FC4 registers", "04 02 000A", #"{"byte_count":2,"values":[10]}"#),
    PDUCase("FC5 echo", "05 00AC FF00", #"{"address":172,"value":65280,"coil":true}"#),
    PDUCase("FC6 echo", "06 0001 0003", #"{"address":1,"value":3}"#),
    PDUCase("FC7 output data", "07 6D", #"{"output_data":109}"#),
    PDUCase("FC8 echo", "08 0000 A537", #"{"subfunction":0,"subfunction_name":"return_query_data","values":[42295]}"#),
    PDUCase("FC11 status and event count", "0B FFFF 0108", #"{"status":65535,"event_count":264}"#),
    PDUCase("FC12 event log", "0C 08 0000 0108 0121 2000",
            #"{"byte_count":8,"status":0,"event_count":264,"message_count":289,"events":[32,0]}"#),
    PDUCase("FC15 echo", "0F 0013 000A", #"{"address":19,"quantity":10}"#),
    PDUCase("FC16 echo", "10 0001 0002", #"{"address":1,"quantity":2}"#),
    PDUCase("FC17 server id", "11 05 01FF123456", #"{"byte_count":5,"data":"01ff123456"}"#),
    PDUCase("FC20 file records", "14 0C 05 06 0DFE 0020 05 06 33CD 0040",
            #"{"byte_count":12,"records":[{"reference_type":6,"values":[3582,32]},{"reference_type":6,"values":[13261,64]}]}"#),
    PDUCase("FC21 echo", "15 0D 06 0004 0007 0003 06AF 04BE 100D",
            #"{"byte_count":13,"records":[{"reference_type":6,"file_number":4,"record_number":7,"record_length":3,"values":[1711,1214,4109]}]}"#),
    PDUCase("FC22 echo", "16 0004 00F2 0025", #"{"address":4,"and_mask":242,"or_mask":37}"#),
    PDUCase("FC23 read part", "17 0C 00FE 0ACD 0001 0003 000D 00FF", #"{"byte_count":12,"values":[254,2765,1,3,13,255]}"#),
    PDUCase("FC24 FIFO", "18 0006 0002 01B8 1284", #"{"byte_count":6,"fifo_count":2,"values":[440,4740]}"#),
    PDUCase("FC43/14 device identification", "2B 0E 01 01 00 00 02 00 07 436F6D70616E79 01 03 563130",
            #"{"mei_type":14,"mei_name":"read_device_identification","read_device_id_code":1,"read_device_id":"basic","conformity_level":1,"more_follows":false,"next_object_id":0,"number_of_objects":2,"objects":[{"id":0,"name":"vendor_name","value":"Company"},{"id":1,"name":"product_code","value":"V10"}]}"#),
    PDUCase("FC43/14 more follows, private object", "2B 0E 03 83 FF 81 01 80 02 BEEF",
            #"{"mei_type":14,"mei_name":"read_device_identification","read_device_id_code":3,"read_device_id":"extended","conformity_level":131,"more_follows":true,"next_object_id":129,"number_of_objects":1,"objects":[{"id":128,"name":"private","value_hex":"beef"}]}"#),
    PDUCase("FC90 UMAS OK", "5A 00 FE 0100", #"{"pairing_key":0,"umas_status":"ok","data":"0100"}"#),
    PDUCase("FC90 UMAS error", "5A 00 FD", #"{"pairing_key":0,"umas_status":"error"}"#),
    PDUCase("exception: illegal data address", "83 02", #"{"exception_code":2,"exception":"illegal_data_address"}"#),
    PDUCase("exception: gateway target", "81 0B",
            #"{"exception_code":11,"exception":"gateway_target_device_failed_to_respond"}"#),
    PDUCase("exception: unknown code", "83 09", #"{"exception_code":9,"exception":"unknown"}"#, .unknownException),
    PDUCase("exception: trailing byte", "83 02 00", #"{"exception_code":2,"exception":"illegal_data_address"}"#, .badLength),
    PDUCase("FC3 odd byte count", "03 03 000102", #"{"byte_count":3,"values":[1]}"#, .byteCountMismatch),
    PDUCase("FC3 byte count beyond the PDU", "03 08 0001 0002", #"{"byte_count":8,"values":[1,2]}"#, .byteCountMismatch),
    PDUCase("FC24 32 entries", "18 0042 0020" + String(repeating: "0001", count: 32),
            #"{"byte_count":66,"fifo_count":32,"values":["# + Array(repeating: "1", count: 32).joined(separator: ",") + "]}",
            .illegalQuantity),
    PDUCase("FC43/14 object runs past the PDU", "2B 0E 01 01 00 00 01 00 09 414243",
            #"{"mei_type":14,"mei_name":"read_device_identification","read_device_id_code":1,"read_device_id":"basic","conformity_level":1,"more_follows":false,"next_object_id":0,"number_of_objects":1,"objects":[]}"#,
            .byteCountMismatch),
    PDUCase("FC43/14 bytes after the last object", "2B 0E 01 01 00 00 01 00 01 41 42",
            #"{"mei_type":14,"mei_name":"read_device_identification","read_device_id_code":1,"read_device_id":"basic","conformity_level":1,"more_follows":false,"next_object_id":0,"number_of_objects":1,"objects":[{"id":0,"name":"vendor_name","value":"A"}]}"#,
            .badLength),
]

@Suite("PDU parser")
struct ParserTests {
    @Test("requests decode to typed fields", arguments: requestCases)
    func request(_ c: PDUCase) {
        let (pdu, json) = decode(c.hex, .request)
        #expect(json == c.json)
        #expect(pdu.problems == c.problems)
    }

    @Test("responses decode to typed fields", arguments: responseCases)
    func response(_ c: PDUCase) {
        let (pdu, json) = decode(c.hex, .response)
        #expect(json == c.json)
        #expect(pdu.problems == c.problems)
    }

    @Test("a bit-packed response carries as many bits as the request asked for")
    func bitsFollowTheRequest() {
        let (request, _) = decode("01 0013 0013", .request)
        let (_, json) = decode("01 03 CD6B05", .response, request: request)
        #expect(json == #"{"byte_count":3,"values":[1,0,1,1,0,0,1,1,1,1,0,1,0,1,1,0,1,0,1]}"#)
        let (discrete, _) = decode("02 00C4 0016", .request)
        let (_, inputs) = decode("02 03 ACDB35", .response, request: discrete)
        #expect(inputs == #"{"byte_count":3,"values":[0,0,1,1,0,1,0,1,1,1,0,1,1,0,1,1,1,0,1,0,1,1]}"#)
    }

    @Test("every prefix of every vector parses without trapping")
    func prefixes() {
        for c in requestCases + responseCases {
            let bytes = hex(c.hex)
            for n in 0...bytes.count {
                _ = ByteView.with(Array(bytes.prefix(n))) { ModbusPDU.parse($0, direction: .request) }
                _ = ByteView.with(Array(bytes.prefix(n))) { ModbusPDU.parse($0, direction: .response) }
                _ = decode(String(c.hex.filter { !$0.isWhitespace }.prefix(2 * n)), .response)
            }
        }
    }

    @Test("every function code byte, with every short data length, parses without trapping")
    func everyCode() {
        for fc in 0...255 {
            for n in 0...12 {
                let bytes = [UInt8(fc)] + (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 5) }
                for d in [ModbusDirection.request, .response] {
                    let (pdu, _) = ByteView.with(bytes) { view -> (ModbusPDU, Int) in
                        var w = JSONWriter()
                        let p = ModbusPDU.parse(view, direction: d)
                        ModbusJSON.writeFields(p, bytes: view, request: nil, into: &w)
                        return (p, w.bytes.count)
                    }
                    #expect(pdu.rawFunctionCode == UInt8(fc))
                }
            }
        }
    }

    @Test("function codes are named and categorised")
    func names() {
        #expect(FunctionCode.readHoldingRegisters.name.description == "read_holding_registers")
        #expect(FunctionCode(rawValue: 0x83) == .readHoldingRegisters)
        #expect(FunctionCode(rawValue: 66).category == .userDefined)
        #expect(FunctionCode(rawValue: 105).name.description == "user_defined")
        #expect(FunctionCode(rawValue: 90).category == .vendor)
        #expect(FunctionCode(rawValue: 125).name.description == "firmware_replacement")
        #expect(FunctionCode(rawValue: 50).category == .unassigned)
        #expect(FunctionCode(rawValue: 50).name.description == "unknown")
        for code in [1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24, 43] {
            #expect(FunctionCode(rawValue: UInt8(code)).category == .publicCode)
        }
        for code in 1...11 where code != 9 {
            #expect(ExceptionCode(rawValue: UInt8(code)).isKnown)
        }
        #expect(!ExceptionCode(rawValue: 9).isKnown && !ExceptionCode(rawValue: 0).isKnown)
    }
}
