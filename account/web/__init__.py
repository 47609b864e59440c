"""The node's web UI: server-rendered pages under ``/ui`` (see docs/web-ui.md)."""
