"""Machine credentials: API keys for SE vendors, service providers and devices (docs/api.md, "Authentication")."""
