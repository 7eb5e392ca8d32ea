"""tsm_core/gp package."""
