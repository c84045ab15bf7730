"""Production-traffic logs: the one place they are simulated or read (drift reports, shadow, monitoring).

- `log`: the contract. `load_traffic(config, known_labels)` reads a user's CSV/JSONL log or runs the
  simulator, scrubs PII on every path, quarantines bad lines with a reason and returns a `TrafficLog`;
  `for_drift(log)` de-duplicates it for a drift report.
- `simulator`: a deterministic day of MangaAssist traffic with a drift knob (``drift=0`` is the
  training distribution; towards 1, a shifted intent mix, new titles and slang, more out-of-scope).
"""

from mangadistill.traffic.log import TrafficLog, for_drift, load_traffic
from mangadistill.traffic.simulator import simulate_traffic

__all__ = ["TrafficLog", "for_drift", "load_traffic", "simulate_traffic"]
