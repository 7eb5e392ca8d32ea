"""Vectors shipped with the key service: a representative subset of the published vectors (`tsm selftest`)."""
