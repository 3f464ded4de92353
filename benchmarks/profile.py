"""The policy's rates and the day profile's users, shared by the Locust file and the runner
(which must not import Locust: gevent would patch its sockets)."""

from __future__ import annotations

import os

RESOLUTIONS_PER_SECOND = 10_000_000 / 86_400  # the policy's daily average, per second
REGISTRATIONS_PER_SECOND = 30_000_000 / (365 * 86_400)
MULTIPLE = float(os.environ.get("BENCH_MULTIPLE", "10"))


def day_profile_users(multiple: float = MULTIPLE) -> tuple[int, int]:
    """Users that hold `multiple` times the average rates (10 req/s per resolver, 1 task/s per registrar)."""
    resolvers = max(1, round(RESOLUTIONS_PER_SECOND * multiple / 10))
    registrars = max(1, round(REGISTRATIONS_PER_SECOND * multiple))
    return resolvers, registrars
