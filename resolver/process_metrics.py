"""The process metrics of a node whose workers are several processes (see ProcessStats)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class ProcessStats:
    """This worker's memory, CPU and file descriptors under the usual `process_*` names, summed over
    the live workers in multiprocess mode: the node's own figures (the supervisor and an embedded
    Postgres are not counted). prometheus-client's ProcessCollector describes only the process that
    answers the scrape, so its readings are copied into these metrics at every flush."""

    def __init__(self, reg: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge
        from prometheus_client.process_collector import ProcessCollector

        self._source = ProcessCollector(registry=None)
        self._gauges = {
            "process_resident_memory_bytes": Gauge(
                "process_resident_memory_bytes",
                "Resident memory of the worker processes, summed",
                registry=reg,
                multiprocess_mode="livesum",
            ),
            "process_virtual_memory_bytes": Gauge(
                "process_virtual_memory_bytes",
                "Virtual memory of the worker processes, summed",
                registry=reg,
                multiprocess_mode="livesum",
            ),
            "process_open_fds": Gauge(
                "process_open_fds",
                "Open file descriptors of the worker processes, summed",
                registry=reg,
                multiprocess_mode="livesum",
            ),
            "process_max_fds": Gauge(
                "process_max_fds",
                "The open-file limit of one worker process (the lowest of the workers)",
                registry=reg,
                multiprocess_mode="livemin",
            ),
            "process_start_time_seconds": Gauge(
                "process_start_time_seconds",
                "Start of the oldest live worker process, in seconds since the epoch",
                registry=reg,
                multiprocess_mode="livemin",
            ),
        }
        self._cpu = Counter(
            "process_cpu_seconds",
            "CPU time (user and system) the worker processes used, every worker since the node started",
            registry=reg,
        )
        self._cpu_seen = 0.0
        workers = Gauge(
            "resolver_worker_processes",
            "Live worker processes",
            registry=reg,
            multiprocess_mode="livesum",
        )
        workers.set(1)
        self.refresh()

    def refresh(self) -> None:
        """Copy the process' current readings (nothing on systems without /proc)."""
        for family in self._source.collect():
            for sample in family.samples:
                if sample.name == "process_cpu_seconds_total":
                    if sample.value > self._cpu_seen:
                        self._cpu.inc(sample.value - self._cpu_seen)
                        self._cpu_seen = sample.value
                else:
                    gauge = self._gauges.get(sample.name)
                    if gauge is not None:
                        gauge.set(sample.value)
