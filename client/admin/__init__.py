"""The admin side of the ``turnstile`` command: a gRPC client of the cluster.

One module per command family; ``printer`` renders every answer as an aligned table or JSON.
"""
