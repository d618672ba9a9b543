// The fold of a fuzz run's events that the DNP3 and S7comm targets compare between their recording and quiet
// runs; copied into each target's one module by its build script (scripts/fuzz/dnp3, scripts/fuzz/s7comm).

/// Folds what `sink` emitted since the last call (every field of its operations and anomalies) into `h` and forgets
/// it: a run with records written and one without must come to the same value (the dissectors take other paths
/// when no record is written, and those must emit exactly what the recording paths do).
func digest(_ sink: EventSink, into h: inout UInt64) {
    func mix(_ v: UInt64, _ h: inout UInt64) { h = (h ^ v) &* 0x100_0000_01B3 }
    func mix(_ s: StaticString, _ h: inout UInt64) { mix(s.hasPointerRepresentation ? UInt64(UInt(bitPattern: s.utf8Start)) : 1, &h) }
    sink.drainOperations { o in
        mix(UInt64(o.appProtocol.rawValue) << 8 | UInt64(o.access.rawValue), &h); mix(UInt64(o.functionCode), &h); mix(o.function, &h)
        mix(UInt64(UInt32(bitPattern: o.subfunction)), &h); mix(UInt64(UInt32(bitPattern: o.unitID)), &h)
        mix(UInt64(UInt32(bitPattern: o.sourceAddress)), &h); mix(UInt64(UInt16(bitPattern: o.area)), &h)
        mix(UInt64(UInt32(bitPattern: o.dbNumber)), &h); mix(UInt64(bitPattern: o.address), &h); mix(UInt64(bitPattern: o.quantity), &h)
        mix((o.broadcast ? 1 : 0) | (o.sender == .initiator ? 0 : 2) | (o.unitRepeated ? 4 : 0), &h)
        mix(o.frame, &h); mix(UInt64(bitPattern: o.time.totalMicroseconds), &h)
    }
    for a in sink.anomalies {
        mix(a.layer, &h); mix(a.kind, &h); mix(UInt64(bitPattern: Int64(a.offset)), &h)
        mix(a.value.map { UInt64(bitPattern: $0) } ?? 0xDEAD_BEEF_0000_0001, &h)
        mix(a.frame, &h); mix(a.sender == .initiator ? 0 : 1, &h)
    }
    sink.anomalies.removeAll(keepingCapacity: true)
}
