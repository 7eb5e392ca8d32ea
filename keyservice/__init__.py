"""keyservice package."""
