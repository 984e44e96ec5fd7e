"""Deterministic network simulator that drives the real ``dht`` core.

One process, a virtual clock (:mod:`~hashmesh.sim.engine`), a simulated wire with
per-link latency and loss (:mod:`~hashmesh.sim.network`), scenarios for churn, dead
and adversarial nodes (:mod:`~hashmesh.sim.scenarios`), metrics
(:mod:`~hashmesh.sim.report`) and the :func:`~hashmesh.sim.runner.run` entry point.
"""
