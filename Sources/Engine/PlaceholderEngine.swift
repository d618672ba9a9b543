/// Engine (in progress).
enum PlaceholderEngine {}
