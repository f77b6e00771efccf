"""Database layer shared by the API and the worker (no fastapi imports here)."""
