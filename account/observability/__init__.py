"""What an operator watches: Prometheus metrics, structured logs and W3C trace context."""
