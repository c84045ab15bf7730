"""Promotion: gates as data, shadow comparison, staged rollout and rollback triggers (runbook 6.9, 15)."""
