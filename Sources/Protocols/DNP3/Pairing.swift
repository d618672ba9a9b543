import Wire
import Records

// The session side of the dissector: select-before-operate checks on every request, and the pairing
// of requests with responses into `dnp3.jsonl` records (IEEE 1815-2012 §4.4.2, §4.4.4; the state
// tables are in Session.swift).

extension DNP3Dissector {
    // MARK: - Select-before-operate
    mutating func checkSelectBeforeOperate(_ fragment: ByteView, _ ah: DNP3ApplicationHeader, link: DNP3LinkHeader,
                                           side: FlowSide, sink: EventSink) {
        switch ah.function {
        case .select:
            sessionState().session.select(side: side, source: link.source, destination: link.destination, sequence: ah.sequence,
                              fragment: fragment, objectsAt: ah.length, time: sink.time)
        case .operate:
            let verdict = sessionState().session.operate(side: side, source: link.source, destination: link.destination,
                                             sequence: ah.sequence, fragment: fragment, objectsAt: ah.length, time: sink.time)
            let kind: StaticString
            switch verdict {
            case .matched: return
            case .withoutSelect: kind = "operate_without_select"
            case .mismatch: kind = "operate_select_mismatch"
            case .expired: kind = "operate_select_expired"
            }
            sink.emit(Anomaly(layer: "dnp3", kind: kind, offset: 0, value: Int64(ah.sequence)), sender: side)
        default:
            break
        }
    }

    // MARK: - Request/response pairing (dnp3.jsonl)

    func pair(_ ah: DNP3ApplicationHeader, access: AccessClass, link: DNP3LinkHeader, side: FlowSide,
              sink: EventSink, state st: DNP3FlowState) {
        let function = ah.function
        if function == .unsolicitedResponse {
            DNP3Records.writeTransaction(sink, request: nil, requestSide: side, response: ah,
                                         responseAddresses: (link.source, link.destination), fragments: 1, status: "unsolicited")
            return
        }
        if function.isResponse {
            let requester = side.opposite, r = Int(side.rawValue)
            var index = -1
            if ah.fir {
                let slot = DNP3Session.slot(side: requester, sequence: ah.sequence)
                let p = st.session.requests[slot]
                if p.active && p.destination == link.source && p.source == link.destination {
                    index = slot
                    st.session.requests[slot].responseFragments = 0
                    st.session.requests[slot].responseFrame = sink.frame
                }
            } else {
                let open = r == 0 ? st.session.openResponse.0 : st.session.openResponse.1
                let next = r == 0 ? st.session.openResponseNext.0 : st.session.openResponseNext.1
                if open >= 0 && st.session.requests[open].active && ah.sequence == next { index = open }
            }
            guard index >= 0 else {
                if ah.fir {
                    DNP3Records.writeTransaction(sink, request: nil, requestSide: side, response: ah,
                                                 responseAddresses: (link.source, link.destination), fragments: 1,
                                                 status: "unmatched_response")
                }
                return
            }
            st.session.requests[index].responseFragments += 1
            if ah.fin {
                DNP3Records.writeTransaction(sink, request: st.session.requests[index], requestSide: requester, response: ah,
                                             responseAddresses: nil, fragments: st.session.requests[index].responseFragments,
                                             status: "complete")
                st.session.requests[index].active = false
                if r == 0 { st.session.openResponse.0 = -1 } else { st.session.openResponse.1 = -1 }
            } else {
                let next = (ah.sequence &+ 1) & 0x0F
                if r == 0 { st.session.openResponse.0 = index; st.session.openResponseNext.0 = next }
                else { st.session.openResponse.1 = index; st.session.openResponseNext.1 = next }
            }
            return
        }
        if function == .confirm { return }
        var request = DNP3PendingRequest(active: true, function: function.rawValue, access: access, source: link.source,
                                         destination: link.destination, sequence: ah.sequence, frame: sink.frame, time: sink.time)
        guard function.expectsResponse else {
            request.active = false
            DNP3Records.writeTransaction(sink, request: request, requestSide: side, response: nil, responseAddresses: nil,
                                         fragments: 0, status: "no_response_expected")
            return
        }
        let slot = DNP3Session.slot(side: side, sequence: ah.sequence)
        if st.session.requests[slot].active {
            DNP3Records.writeTransaction(sink, request: st.session.requests[slot], requestSide: side, response: nil,
                                         responseAddresses: nil, fragments: 0, status: "unanswered")
        }
        st.session.requests[slot] = request
    }
}
