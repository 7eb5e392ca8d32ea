"""The application catalog: load files (CAP) and applications submitted by service providers, and their review."""
