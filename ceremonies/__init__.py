"""ceremonies package."""
