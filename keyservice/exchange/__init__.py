"""keyservice/exchange package."""
