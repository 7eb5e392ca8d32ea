"""tsm_core/transport package."""
