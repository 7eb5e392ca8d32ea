"""tsm_core package."""
