"""The soak bench's script runs (on the fake service): it is what `invoke bench.soak` runs on
a lab fleet. No timing is asserted here (the bench prints its figures); counts are."""

from __future__ import annotations

import asyncio

import pytest

from console.tui.soak import SoakReport, soak
from support.tui_fixtures import FakeService

pytestmark = pytest.mark.timeout(180)


def test_a_short_soak_switches_tabs_opens_every_dialog_and_counts_what_lives():
    lines: list[str] = []
    report: SoakReport = asyncio.run(
        soak(FakeService(hosts=50), seconds=6, idle=0.5, sample_every=0.5, echo=lines.append)
    )
    assert report.rounds >= 1 and len(report.switches) >= 30 and len(report.bare_switches) >= 30
    assert set(report.dialogs) == {
        "HelpScreen",
        "LockScreen",
        "ConfirmDeploy",
        "DeployDetailScreen",
        "HostDetailScreen",
    }
    assert all(len(times) == report.rounds for times in report.dialogs.values())
    assert not any("did not open" in line for line in lines), lines
    assert report.samples and all(s.rss > 0 for s in report.samples) and report.idle_cpu
    assert len(report.settle_cpu) == len(report.idle_cpu) == report.rounds  # each window from a second after the key
    first, last = report.widgets
    assert last <= first + 10  # the widgets of closed dialogs do not pile up
