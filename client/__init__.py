"""Turnstile client library for workers."""
