"""WSGI entry point for gunicorn: the app configured from LAB_* environment variables."""

from .app import create_app

app = create_app()
