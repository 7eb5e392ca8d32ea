"""The GlobalPlatform vocabulary, described once: APDUs, BER-TLV, status words, key types and KCV methods, the
secure-channel protocol identifiers and the INITIALIZE UPDATE exchange.

Pure functions and data over bytes; imports nothing of the product. Used by the key service (which adds the
HSM) and by the TSM core (which adds cards and transports). The card simulator keeps its own implementation.
"""
