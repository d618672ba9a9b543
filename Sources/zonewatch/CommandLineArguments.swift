/// A usage or input error: one clear line on stderr, exit code 2.
struct UsageError: Error { let message: String }

/// Hand-written argument scanning: `--name value`, `--name=value`, flags, and positional arguments.
struct CommandLineArguments {
    private var items: [String]
    private(set) var positional: [String] = []

    init(_ arguments: ArraySlice<String>) { items = Array(arguments) }

    /// Consumes every occurrence of `--name VALUE` (or `-n VALUE`) and returns their values in order.
    mutating func values(_ names: String...) throws(UsageError) -> [String] {
        var out: [String] = []
        var i = 0
        while i < items.count {
            let item = items[i]
            if let eq = item.firstIndex(of: "="), names.contains(String(item[..<eq])) {
                out.append(String(item[item.index(after: eq)...])); items.remove(at: i); continue
            }
            if names.contains(item) {
                guard i + 1 < items.count else { throw UsageError(message: "\(item) needs a value") }
                out.append(items[i + 1]); items.removeSubrange(i...(i + 1)); continue
            }
            i += 1
        }
        return out
    }

    /// Consumes `--name VALUE` once; the last one wins.
    mutating func value(_ names: String...) throws(UsageError) -> String? {
        var found: String?
        for n in names { if let v = try values(n).last { found = v } }
        return found
    }

    /// Consumes an integer option.
    mutating func integer(_ name: String) throws(UsageError) -> Int? {
        guard let v = try value(name) else { return nil }
        guard let n = Int(v), n >= 0 else { throw UsageError(message: "\(name) needs a non-negative whole number, not \"\(v)\"") }
        return n
    }

    /// Consumes a flag; true when present.
    mutating func flag(_ names: String...) -> Bool {
        var found = false
        items.removeAll { item in
            if names.contains(item) { found = true; return true }
            return false
        }
        return found
    }

    /// What is left: positional arguments; an unknown `--option` is an error.
    mutating func finish() throws(UsageError) -> [String] {
        for item in items where item.hasPrefix("-") && item != "-" {
            throw UsageError(message: "unknown option \(item) (see --help)")
        }
        positional = items
        return items
    }
}
