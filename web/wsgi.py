"""WSGI entry point for gunicorn: `gunicorn 'web.wsgi:create()'`."""

from __future__ import annotations

from flask import Flask

from web.app import create_app


def create() -> Flask:
    """The app for this worker (each worker opens its own HSM session after fork)."""
    return create_app()
