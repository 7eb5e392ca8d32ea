"""What each HSM can do natively, as data: one TOML profile per HSM (SoftHSM2 tested, others untested)."""
