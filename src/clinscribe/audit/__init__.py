"""The append-only audit log of who viewed, changed, exported or deleted patient data."""
