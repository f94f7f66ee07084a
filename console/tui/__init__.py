"""The deploy console's Textual UI.

Everything under `console.tui` may import `textual`; nothing outside it does. The UI
never runs a deploy: it talks to a `ConsoleService` (`backend.py`, typed with the records
`console.service` exports) and renders the events and samples that service returns.

- `app.py`: `ConsoleApp`: the service, clock and intervals; the styles and the theme; the
  one handler that shows a failed worker as one line.
- `workers.py`: `service_worker`, the thread worker every call to the service runs in.
- `theme.py`: the console's colours, declared once (`Palette`, `THEME`, `palette(node)`).
- `console.tcss`: every style, with theme variables only.
- `feed.py`: events of a followed deploy, folded into batches the UI can afford.
- `format.py`: times, durations and sizes as the console shows them.
- `screens/`: the main screen (`console.py`, its operator actions in `operator.py`), its
  dialogs, the live log and the help.
- `panes/`: the main screen's tabs, one pane each: queue, fleet, metrics, history.
- `widgets/`: one widget per module; each renders one thing.
- `bench.py`: the console under load (`invoke bench.console`).
- `web.py`: `deploy-console --web`, the console served to a browser (textual-serve).
"""
