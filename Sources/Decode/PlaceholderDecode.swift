/// Decode (in progress).
enum PlaceholderDecode {}
