/// Zone/conduit policy (placeholder until the policy issue lands).
public enum PolicyPlaceholder {}
