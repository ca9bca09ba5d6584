"""API views (being written)."""
