/// Capture (in progress).
enum PlaceholderCapture {}
