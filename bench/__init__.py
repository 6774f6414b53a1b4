"""``turnstile bench``: Turnstile's speed and correctness, side by side with etcd and ZooKeeper.

``cli`` (options), ``runner`` (workloads per system), ``workers`` (client processes),
``drivers`` (one client per system), ``systems`` (local clusters), ``stats`` (percentiles and
the correctness checks), ``report`` (the table). See docs/benchmarks.md.
"""
