"""The primary service's `/-/metrics`: its counters and the log's head, by prometheus_client."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class Counters(Counter[str]):
    """Totals since the service started, served on /-/metrics, by the keys of `_COUNTERS`.

    A `Counter`, so one notification's summary (`gdk_geo.primary.triage.summary`, whose
    keys are these names) is added with `update`, and a name never counted reads 0.
    """


_COUNTERS = (
    # (metric, help, key of Counters)
    ("gdk_geo_registry_events_received", "Registry events received.", "received"),
    ("gdk_geo_registry_events_recorded", "Events appended to the Geo event log.", "recorded"),
    ("gdk_geo_registry_events_ignored", "Events not needed (pulls, blobs, repeats).", "ignored"),
    ("gdk_geo_registry_events_rejected", "Events refused as invalid.", "rejected"),
    ("gdk_geo_notifications_unauthorized", "Notifications refused with 401.", "unauthorized"),
)


class PrimaryCollector(Collector):
    """Reads the counters and the log's last id at each scrape; nothing is kept twice."""

    def __init__(
        self, counters: Counters, last_id: Callable[[], int], waiting: Callable[[], int]
    ) -> None:
        self._counters = counters
        self._last_id = last_id
        self._waiting = waiting

    def collect(self) -> Iterator[Metric]:
        for name, help_text, key in _COUNTERS:
            yield CounterMetricFamily(name, help_text, value=self._counters[key])
        yield GaugeMetricFamily(
            "gdk_geo_event_log_last_id",
            "Id of the newest event in the Geo event log.",
            value=self._last_id(),
        )
        yield GaugeMetricFamily(
            "gdk_geo_event_polls_waiting",
            "Long-polls of the event API waiting for news now (secondaries following the log).",
            value=self._waiting(),
        )
