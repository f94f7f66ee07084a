"""The console's widgets: each renders one thing the engine says (one widget per module)."""
