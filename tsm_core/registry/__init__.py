"""The SE registry: tenants, secure elements, their security domains and key sets, and what each card holds."""
