"""TSM components over the API: the key service's Vault-transit-like face (docs/api.md, "Key service")."""
