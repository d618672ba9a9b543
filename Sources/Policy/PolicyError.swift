/// One problem found in a policy file, with the 1-based line and column where it is.
///
/// Printed as `FILE:LINE:COLUMN: message`, the form compilers and editors understand.
public struct PolicyError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file the policy came from (or a label such as `<string>`).
    public var file: String
    /// 1-based line.
    public var line: Int
    /// 1-based column.
    public var column: Int
    /// What is wrong, and where useful what was expected.
    public var message: String

    /// Creates an error.
    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file; self.line = line; self.column = column; self.message = message
    }

    /// `FILE:LINE:COLUMN: message`.
    public var description: String { "\(file):\(line):\(column): \(message)" }
}

/// A position in the policy text (1-based), carried by every node so errors can point at it.
public struct SourceMark: Hashable, Sendable {
    /// 1-based line.
    public var line: Int
    /// 1-based column.
    public var column: Int
    /// Creates a mark.
    public init(line: Int, column: Int) { self.line = line; self.column = column }
}
