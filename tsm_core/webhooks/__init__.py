"""Signed webhooks: service providers told of operations' completion and services' state changes (docs/api.md,
"Webhooks")."""
