"""cardsim package."""
