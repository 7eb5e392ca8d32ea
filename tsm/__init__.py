"""tsm package."""
