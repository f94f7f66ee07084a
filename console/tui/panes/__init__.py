"""The console screen's four tabs, one pane widget each: queue, fleet, metrics, history."""
