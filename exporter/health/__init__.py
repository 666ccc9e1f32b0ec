"""Health: the rules of each configured system evaluated over the snapshot."""
