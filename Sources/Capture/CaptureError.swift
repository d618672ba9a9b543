/// A failure reported by libpcap, with libpcap's own message.
public struct CaptureError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, in ZoneWatch's terms.
    public enum Kind: Sendable {
        /// The file or device could not be opened (missing, not a capture, permission).
        case open
        /// The capture's link type is not one ZoneWatch decodes.
        case unsupportedLinkType
        /// Reading failed part-way (a truncated file, a device error).
        case read
        /// The BPF filter did not compile or could not be set.
        case filter
        /// Activating a live capture failed.
        case activate
    }
    /// The kind of failure.
    public var kind: Kind
    /// libpcap's message, or ours.
    public var message: String

    /// Creates an error.
    public init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }

    public var description: String { message }
}
