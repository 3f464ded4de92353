"""The policy's rates and the day profile's users, shared by the Locust file and the runner
(which must not import Locust: gevent would patch its sockets).

Each resolver user holds RESOLVER_USER_RATE requests/s on its own keep-alive connection, as the
top-level node and the aggregating gateways in front of scanning apps do. Fewer, busier users also
keep Locust's own scheduling out of the measured latency: on this 2-core machine, 116 users at 10/s
each measured p50 7 ms / p99 25 ms against the same node where 12 users at 100/s each measured
p50 2 ms / p99 4 ms (Locust 2.47, same offered load).
"""

from __future__ import annotations

import math
import os

RESOLUTIONS_PER_SECOND = 10_000_000 / 86_400  # the policy's daily average, per second
REGISTRATIONS_PER_SECOND = 30_000_000 / (365 * 86_400)
MULTIPLE = float(os.environ.get("BENCH_MULTIPLE", "10"))
RESOLVER_USER_RATE = 100.0
REGISTRAR_USER_RATE = 2.0


def day_profile_users(multiple: float = MULTIPLE) -> tuple[int, int]:
    """Users that hold `multiple` times the average rates: (resolvers, registrars)."""
    resolvers = max(1, math.ceil(RESOLUTIONS_PER_SECOND * multiple / RESOLVER_USER_RATE))
    registrars = max(1, math.ceil(REGISTRATIONS_PER_SECOND * multiple / REGISTRAR_USER_RATE))
    return resolvers, registrars


def day_profile_rates(multiple: float = MULTIPLE) -> tuple[float, float]:
    """Tasks per second each resolver and each registrar user holds so the totals hit the target."""
    resolvers, registrars = day_profile_users(multiple)
    return RESOLUTIONS_PER_SECOND * multiple / resolvers, REGISTRATIONS_PER_SECOND * multiple / registrars
