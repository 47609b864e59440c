"""Reports: partner scorecards, SLA compliance, time by level."""
