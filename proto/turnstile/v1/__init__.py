"""Turnstile v1 gRPC API: generated stubs (regenerate with python proto/generate.py)."""
