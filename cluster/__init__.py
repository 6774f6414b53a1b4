"""Turnstile server node: the replicated state machine and everything around it."""
