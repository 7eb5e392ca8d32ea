"""softhsm package."""
