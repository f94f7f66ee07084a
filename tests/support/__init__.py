"""Helpers the tests share: fleets on the lab, git repositories, servers, the TUI fixture app. No tests here."""
