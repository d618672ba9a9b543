import CYAML

/// A YAML node with the position it started at: the small document model the policy decoder walks.
///
/// Built from libyaml's event stream (not its document API) so that every node keeps its mark and
/// so that aliases can be bounded: a policy is small, and a "billion laughs" file must not be able
/// to exhaust memory.
public struct YAMLNode: Sendable {
    /// The node's content.
    public enum Content: Sendable {
        /// A scalar and whether it was plain (unquoted): only plain scalars can be null or numbers.
        case scalar(String, plain: Bool)
        /// A sequence.
        case sequence([YAMLNode])
        /// A mapping, in document order.
        case mapping([(key: YAMLNode, value: YAMLNode)])
    }
    /// The content.
    public var content: Content
    /// Where the node starts.
    public var mark: SourceMark

    /// The scalar text, nil for collections.
    public var scalar: String? { if case .scalar(let s, _) = content { return s }; return nil }

    /// Whether this is a YAML null (`~`, `null`, or nothing).
    public var isNull: Bool {
        if case .scalar(let s, let plain) = content, plain { return s.isEmpty || s == "~" || s == "null" || s == "Null" || s == "NULL" }
        return false
    }

    /// A short name of the node's kind for error messages.
    public var kindName: String {
        switch content {
        case .scalar: isNull ? "null" : "a scalar"
        case .sequence: "a list"
        case .mapping: "a mapping"
        }
    }
}

/// Parses YAML text into one document tree.
public enum YAMLReader {
    /// The most nodes a document may expand to (aliases included).
    public static let maximumNodes = 1_000_000

    /// Parses the first document of `text`; errors carry libyaml's problem and mark.
    /// A stream with no document gives a null scalar at 1:1.
    public static func parse(_ text: String, file: String) -> Result<YAMLNode, PolicyError> {
        var bytes = Array(text.utf8)
        if bytes.isEmpty { bytes = [0x0A] }
        return bytes.withUnsafeBufferPointer { buffer -> Result<YAMLNode, PolicyError> in
            var parser = yaml_parser_t()
            guard yaml_parser_initialize(&parser) == 1 else {
                return .failure(PolicyError(file: file, line: 1, column: 1, message: "cannot initialise the YAML parser"))
            }
            defer { yaml_parser_delete(&parser) }
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var builder = Builder(file: file)
            return builder.run(&parser)
        }
    }

    private struct Frame {
        var isMapping: Bool
        var mark: SourceMark
        var anchor: String?
        var items: [YAMLNode] = []
    }

    private struct Builder {
        let file: String
        var stack: [Frame] = []
        var anchors: [String: YAMLNode] = [:]
        var anchorSizes: [String: Int] = [:]
        var nodeCount = 0
        var root: YAMLNode?
        var documents = 0

        init(file: String) { self.file = file }

        func mark(_ m: yaml_mark_t) -> SourceMark { SourceMark(line: Int(m.line) + 1, column: Int(m.column) + 1) }

        func error(_ message: String, _ m: SourceMark) -> PolicyError {
            PolicyError(file: file, line: m.line, column: m.column, message: message)
        }

        static func string(_ p: UnsafeMutablePointer<yaml_char_t>?, length: Int) -> String {
            guard let p else { return "" }
            return String(decoding: UnsafeBufferPointer(start: p, count: length), as: UTF8.self)
        }

        static func cString(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
            guard let p else { return nil }
            return String(cString: p)
        }

        mutating func run(_ parser: inout yaml_parser_t) -> Result<YAMLNode, PolicyError> {
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else {
                    let problem = parser.problem.map { String(cString: $0) } ?? "syntax error"
                    let context = parser.context.map { String(cString: $0) + ": " } ?? ""
                    return .failure(error("YAML: \(context)\(problem)", mark(parser.problem_mark)))
                }
                defer { yaml_event_delete(&event) }
                let at = mark(event.start_mark)
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return .success(root ?? YAMLNode(content: .scalar("", plain: true), mark: SourceMark(line: 1, column: 1)))
                case YAML_DOCUMENT_START_EVENT:
                    documents += 1
                    if documents > 1 { return .failure(error("a policy file holds one YAML document", at)) }
                case YAML_SEQUENCE_START_EVENT:
                    stack.append(Frame(isMapping: false, mark: at, anchor: Builder.cString(event.data.sequence_start.anchor)))
                case YAML_MAPPING_START_EVENT:
                    stack.append(Frame(isMapping: true, mark: at, anchor: Builder.cString(event.data.mapping_start.anchor)))
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    let frame = stack.removeLast()
                    let node: YAMLNode
                    if frame.isMapping {
                        var pairs: [(key: YAMLNode, value: YAMLNode)] = []
                        pairs.reserveCapacity(frame.items.count / 2)
                        var i = 0
                        while i + 1 < frame.items.count { pairs.append((frame.items[i], frame.items[i + 1])); i += 2 }
                        node = YAMLNode(content: .mapping(pairs), mark: frame.mark)
                    } else {
                        node = YAMLNode(content: .sequence(frame.items), mark: frame.mark)
                    }
                    if let r = add(node, anchor: frame.anchor, size: 1) { return .failure(r) }
                case YAML_SCALAR_EVENT:
                    let s = event.data.scalar
                    let text = Builder.string(s.value, length: Int(s.length))
                    let plain = s.style == YAML_PLAIN_SCALAR_STYLE
                    let node = YAMLNode(content: .scalar(text, plain: plain), mark: at)
                    if let r = add(node, anchor: Builder.cString(s.anchor), size: 1) { return .failure(r) }
                case YAML_ALIAS_EVENT:
                    let name = Builder.cString(event.data.alias.anchor) ?? ""
                    guard let target = anchors[name] else { return .failure(error("unknown alias *\(name)", at)) }
                    // The alias is reported where it is used; the target keeps its own marks.
                    var copy = target; copy.mark = at
                    if let r = add(copy, anchor: nil, size: anchorSizes[name] ?? 1) { return .failure(r) }
                default:
                    break
                }
            }
        }

        /// Attaches a finished node to its parent (or makes it the root) and records its anchor.
        mutating func add(_ node: YAMLNode, anchor: String?, size: Int) -> PolicyError? {
            nodeCount += size
            if nodeCount > YAMLReader.maximumNodes {
                return error("the document expands to more than \(YAMLReader.maximumNodes) nodes (alias bomb?)", node.mark)
            }
            if let anchor { anchors[anchor] = node; anchorSizes[anchor] = Builder.size(of: node) }
            if stack.isEmpty { root = node } else { stack[stack.count - 1].items.append(node) }
            return nil
        }

        static func size(of node: YAMLNode) -> Int {
            switch node.content {
            case .scalar: return 1
            case .sequence(let items): return items.reduce(1) { $0 + size(of: $1) }
            case .mapping(let pairs): return pairs.reduce(1) { $0 + size(of: $1.key) + size(of: $1.value) }
            }
        }
    }
}
