"""Provisioning jobs: persisted plans of steps run against one SE at a time, resumable after any interruption."""
