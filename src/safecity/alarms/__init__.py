"""Alarm monitoring: accounts, supervision, the alarm queue and escalation."""
