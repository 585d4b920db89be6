"""The primary service's `/-/metrics`: its counters and the log's head, by prometheus_client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass
class Counters:
    """Totals since the service started, served on /-/metrics."""

    received: int = 0
    recorded: int = 0
    ignored: int = 0
    rejected: int = 0
    unauthorized: int = 0

    def count(self, summary: dict[str, int]) -> None:
        """Add one notification's summary (see `gdk_geo.primary.triage.summary`)."""
        self.received += summary["received"]
        self.recorded += summary["recorded"]
        self.ignored += summary["ignored"]
        self.rejected += summary["rejected"]


_COUNTERS = (
    # (metric, help, field of Counters)
    ("gdk_geo_registry_events_received", "Registry events received.", "received"),
    ("gdk_geo_registry_events_recorded", "Events appended to the Geo event log.", "recorded"),
    ("gdk_geo_registry_events_ignored", "Events not needed (pulls, blobs, repeats).", "ignored"),
    ("gdk_geo_registry_events_rejected", "Events refused as invalid.", "rejected"),
    ("gdk_geo_notifications_unauthorized", "Notifications refused with 401.", "unauthorized"),
)


class PrimaryCollector(Collector):
    """Reads the counters and the log's last id at each scrape; nothing is kept twice."""

    def __init__(self, counters: Counters, last_id: Callable[[], int]) -> None:
        self._counters = counters
        self._last_id = last_id

    def collect(self) -> Iterator[Metric]:
        for name, help_text, key in _COUNTERS:
            yield CounterMetricFamily(name, help_text, value=getattr(self._counters, key))
        yield GaugeMetricFamily(
            "gdk_geo_event_log_last_id",
            "Id of the newest event in the Geo event log.",
            value=self._last_id(),
        )
