"""hsm_profiles package."""
