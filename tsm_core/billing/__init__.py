"""Metering and billing per service provider: events, tariffs, monthly usage reports."""
