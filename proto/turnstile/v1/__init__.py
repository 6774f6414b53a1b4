"""Turnstile v1 API: the generated stubs of turnstile.proto (regenerate with
python proto/generate.py), and the hand-written values both sides share with them: the error
reasons (``reasons``, ``error_info``) and the metadata keys (``metadata``)."""
