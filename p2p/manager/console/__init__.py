"""The web console: static assets served by the manager (they use only /api/v1)."""
