"""Request counters and a latency histogram in the Prometheus text format (no client library needed)."""

from __future__ import annotations

import bisect
import threading

#: Upper bounds (ms) of the latency histogram buckets.
LATENCY_BUCKETS_MS = (1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)


class ServingMetrics:
    """Thread-safe counters: requests by endpoint and status, predicted texts, latency histogram of /predict."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.texts = 0
        self.buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)  # last bucket: +Inf
        self.latency_sum_ms = 0.0
        self.model_swaps = 0

    def observe(self, endpoint: str, status: int, latency_ms: float | None = None, texts: int = 0) -> None:
        with self._lock:
            self.requests[(endpoint, status)] = self.requests.get((endpoint, status), 0) + 1
            self.texts += texts
            if latency_ms is not None:
                self.buckets[bisect.bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1
                self.latency_sum_ms += latency_ms

    def render(self, model_name: str, model_version: str | None, stage: str) -> str:
        """The /metrics page."""
        with self._lock:
            lines = ["# HELP intent_requests_total HTTP requests by endpoint and status code.",
                     "# TYPE intent_requests_total counter"]
            for (endpoint, status), count in sorted(self.requests.items()):
                lines.append(f'intent_requests_total{{endpoint="{endpoint}",status="{status}"}} {count}')
            lines += ["# HELP intent_predicted_texts_total Texts classified.",
                      "# TYPE intent_predicted_texts_total counter",
                      f"intent_predicted_texts_total {self.texts}",
                      "# HELP intent_predict_latency_ms Latency of successful /predict requests (ms).",
                      "# TYPE intent_predict_latency_ms histogram"]
            cumulative = 0
            for bound, count in zip((*LATENCY_BUCKETS_MS, "+Inf"), self.buckets, strict=True):
                cumulative += count
                lines.append(f'intent_predict_latency_ms_bucket{{le="{bound}"}} {cumulative}')
            lines += [f"intent_predict_latency_ms_sum {self.latency_sum_ms:.3f}",
                      f"intent_predict_latency_ms_count {cumulative}",
                      "# HELP intent_model_info The registry version being served (value 1).",
                      "# TYPE intent_model_info gauge",
                      f'intent_model_info{{name="{model_name}",version="{model_version or "none"}",stage="{stage}"}} 1',
                      "# HELP intent_model_swaps_total Times a new registry version was swapped in without restart.",
                      "# TYPE intent_model_swaps_total counter", f"intent_model_swaps_total {self.model_swaps}"]
        return "\n".join(lines) + "\n"
