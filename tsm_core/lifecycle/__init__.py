"""The service life cycle an end user lives through: open, lock, unlock, top-up, delete, migrate, re-issue."""
