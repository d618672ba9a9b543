/// SIEM outputs (placeholder until the SIEM issue lands).
public enum OutputPlaceholder {}
