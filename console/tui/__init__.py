"""The deploy console's Textual UI.

Everything under `console.tui` may import `textual`; nothing outside it does. The UI
never runs a deploy: it talks to a `ConsoleService` (see `backend.py`) and renders the
events and samples that service returns.
"""
