"""SLA: business calendars, per-priority policies and clock computation (ARCHITECTURE §3, §8)."""
