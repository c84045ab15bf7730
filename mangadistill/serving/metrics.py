"""The service's Prometheus metrics: one `CollectorRegistry` per app (prometheus_client), family-neutral names.

- ``mangadistill_requests_total{endpoint,status}`` (counter): HTTP responses by endpoint (``/predict``,
  ``/health``, ``/metrics``, or ``other`` for any other path, so the label values stay few) and status code;
- ``mangadistill_predicted_texts_total`` (counter): texts answered by the model;
- ``mangadistill_predict_latency_seconds`` (histogram): successful ``/predict`` requests, waiting for the
  model plus the model;
- ``mangadistill_model_info{name,version,stage}`` (info): the registry version being served (``none``
  before the first load);
- ``mangadistill_model_swaps_total`` (counter): a new registry version replaced the served one, no restart;
- ``mangadistill_model_swap_failures_total`` (counter): a version the alias pointed at did not load or
  answer its warm-up query, so it was not swapped in;
- ``mangadistill_model_degraded`` (gauge): 1 while /health says ``degraded`` or ``unavailable``.

The model's metrics are read from the `RegistryFollower` at scrape time, so they cannot drift from /health.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "mangadistill"
ENDPOINTS = ("/predict", "/health", "/metrics")  # any other path is counted as "other" (bounded label values)
#: Upper bounds (seconds) of the latency histogram buckets.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _ModelCollector(Collector):
    """The served model's state, read from the follower (`RegistryFollower` or a stand-in) at each scrape."""

    def __init__(self, follower: Any) -> None:
        self._follower = follower

    def collect(self) -> Iterator[Metric]:
        follower = self._follower
        current = follower.current
        yield InfoMetricFamily(f"{PREFIX}_model", "The registry version being served.",
                               value={"name": follower.model_name, "version": current.version if current else "none",
                                      "stage": follower.stage})
        yield CounterMetricFamily(f"{PREFIX}_model_swaps", "Times a new registry version replaced the served one "
                                  "without a restart.", value=follower.swaps)
        yield CounterMetricFamily(f"{PREFIX}_model_swap_failures", "Times a version the registry pointed at did not "
                                  "load or answer a warm-up query, so it was not swapped in.",
                                  value=follower.swap_failures)
        yield GaugeMetricFamily(f"{PREFIX}_model_degraded", "1 while /health says degraded or unavailable.",
                                value=float(follower.status != "ok"))


class ServingMetrics:
    """The app's metrics registry; thread-safe (prometheus_client's metrics lock themselves)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, follower: Any) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(f"{PREFIX}_requests", "HTTP responses by endpoint and status code.",
                                 ["endpoint", "status"], registry=self.registry)
        self._texts = Counter(f"{PREFIX}_predicted_texts", "Texts answered by the model.", registry=self.registry)
        self._latency = Histogram(f"{PREFIX}_predict_latency_seconds", "Successful /predict requests: waiting for "
                                  "the model plus the model (seconds).", buckets=LATENCY_BUCKETS_S,
                                  registry=self.registry)
        self.registry.register(_ModelCollector(follower))

    @staticmethod
    def endpoint(path: str) -> str:
        return path if path in ENDPOINTS else "other"

    def count_response(self, path: str, status: int) -> None:
        self._requests.labels(self.endpoint(path), str(status)).inc()

    def observe_prediction(self, latency_s: float, texts: int) -> None:
        self._latency.observe(latency_s)
        self._texts.inc(texts)

    def render(self) -> bytes:
        """The /metrics page (Prometheus text format)."""
        return generate_latest(self.registry)
