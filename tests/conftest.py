"""Settings every test shares.

Hypothesis tests here check properties, never speed: its per-example deadline (200 ms) and its
"too slow" health check measure the machine, and CI machines are shared (a busy neighbour made a
schema-values example take 280 ms and fail the lowest-versions run). Speed is the benchmarks' job
(benchmarks/). A test may still set its own ``@settings``; what it does not set comes from here.
"""

from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")
