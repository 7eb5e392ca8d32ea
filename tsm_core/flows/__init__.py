"""Card-management flows: one module per operation, each over a `Transport` and a secure-channel session."""
