/// ICS detections (placeholder until the policy issue lands).
public enum DetectionPlaceholder {}
