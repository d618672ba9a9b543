/// Flows (in progress).
enum PlaceholderFlows {}
