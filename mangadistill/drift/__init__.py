"""Drift monitoring: features of production traffic, Evidently drift reports, retraining advice.

Traffic logs themselves (simulator and reader) live in `mangadistill.traffic`.

- `features`: per-query descriptors (length, words, out-of-vocabulary rate) and embedding components.
- `production`: finding and calling the registered production model.
- `report`: the Evidently 0.7 report (its own API, not `evidently.legacy`) and its summary.
- `decision`: the pure retraining recommendation the monitoring job acts on.
"""
