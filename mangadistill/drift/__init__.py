"""Drift monitoring: production-traffic logs, their features, Evidently drift reports, retraining advice.

- `traffic`: the production-traffic simulator (with a drift knob) and the reader for users' logs.
- `features`: per-query descriptors (length, words, out-of-vocabulary rate) and embedding components.
- `production`: finding and calling the registered production model.
- `report`: the Evidently 0.7 report (its own API, not `evidently.legacy`) and its summary.
- `decision`: the pure retraining recommendation the monitoring job acts on.
"""
