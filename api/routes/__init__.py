"""One router module per resource, all mounted under /api/v1."""
