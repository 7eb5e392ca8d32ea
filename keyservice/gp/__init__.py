"""keyservice/gp package."""
