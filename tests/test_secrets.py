"""Secrets: declared in the inventory, valued from the environment or a private file, sent
to hosts on the command's stdin, and `***` wherever they would be shown or recorded.

The fast tests run the real pipeline over the fake fleet (support/fake_fleet.py), which
keeps every command and its stdin; the last one restarts real lab hosts over OpenSSH and
proves the value arrives there through stdin.
"""

from __future__ import annotations

import json

import pytest

from console.core.errors import ConsoleError
from console.core.events import DeployDone
from console.pipeline.plan import DeployRequest
from console.pipeline.run import Pipeline
from console.session.runs import run_deploy
from console.state.history import History
from support.fake_fleet import USER, FakeFleet, inventory, shop_trunk
from support.fleet import Recorder, make_fleet
from support.gitrepo import Repo

TOKEN = "tok-3f9a1c77e2b04d5e"  # the value of SHOP_RELOAD_TOKEN
PASSWORD = "pw-8d2e6b0a91c4"  # the content of the db_password file
RESTART = "reload --token {reload_token} --password {db_password} --port {http_port} && echo reloaded"


@pytest.fixture(scope="module")
def trunk(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    return shop_trunk(tmp_path_factory.mktemp("secrets") / "trunk")


@pytest.fixture
def secret_inventory(tmp_path, trunk, monkeypatch):
    monkeypatch.setenv("SHOP_RELOAD_TOKEN", TOKEN)
    (tmp_path / "db_password").write_text(PASSWORD + "\n")
    (tmp_path / "db_password").chmod(0o600)

    def make(**keys):
        return inventory(
            tmp_path,
            trunk,
            vars={"http_port": 8080},
            secrets=[
                {"name": "reload_token", "env": "SHOP_RELOAD_TOKEN"},
                {"name": "db_password", "file": str(tmp_path / "db_password")},
            ],
            restart=RESTART,
            **keys,
        )

    return make


def secret_free(data: bytes, where: str) -> None:
    assert TOKEN.encode() not in data and PASSWORD.encode() not in data, f"a secret is in {where}"


def test_a_secret_goes_on_stdin_never_in_the_command(secret_inventory):
    fleet = FakeFleet()
    done = run_deploy(secret_inventory(), DeployRequest(user=USER), connect=fleet.connect)
    assert done.result == "ok", done
    restarts = [(command, stdin) for _host, what, command, stdin in fleet.commands if what == "restart"]
    assert len(restarts) == 8
    for command, stdin in restarts:
        assert TOKEN not in command and PASSWORD not in command
        assert stdin == f"{TOKEN}\n{PASSWORD}\n"  # in the order the command reads them
        assert command == (
            "IFS= read -r DEPLOY_SECRET_reload_token && export DEPLOY_SECRET_reload_token"
            " && IFS= read -r DEPLOY_SECRET_db_password && export DEPLOY_SECRET_db_password && {\n"
            'reload --token "$DEPLOY_SECRET_reload_token" --password "$DEPLOY_SECRET_db_password" --port 8080'
            " && echo reloaded\n}"
        )
    assert all(stdin is None for _h, what, _c, stdin in fleet.commands if what != "restart")


def test_a_secret_is_stars_in_the_dry_run_the_records_and_the_webhooks(secret_inventory, receiver):
    inv = secret_inventory(notify={"webhooks": [receiver.url]})
    pipeline = Pipeline(inv, Recorder(), connect=FakeFleet().connect)
    shown = pipeline.describe(pipeline.plan(DeployRequest(user=USER)))
    assert "reload --token *** --password *** --port 8080 && echo reloaded" in shown
    secret_free(shown.encode(), "the dry run")

    fleet = FakeFleet()
    fleet.fail[("web03", "restart")] = f"restart exited 1: bad token {TOKEN}"  # a host echoes it back
    rec = Recorder()
    done = run_deploy(inv, DeployRequest(user=USER), printer=rec, connect=fleet.connect)
    assert done.result == "failed" and dict(done.hosts_failed)["web03"] == "restart: restart exited 1: bad token ***"
    assert rec.of(DeployDone)[0].hosts_failed == done.hosts_failed  # what the printer showed
    log = inv.state_dir / "deploys" / f"{done.deploy_id}.jsonl"
    secret_free(log.read_bytes(), "the event log")
    record = History(inv.state_dir).get(done.deploy_id)
    assert record.failed_hosts["web03"].endswith("bad token ***")
    for path in inv.state_dir.glob("history.sqlite*"):
        secret_free(path.read_bytes(), path.name)
    assert receiver.bodies, "no webhook was posted"
    secret_free(json.dumps(receiver.bodies).encode(), "a webhook")


def test_a_missing_secret_stops_the_deploy_before_any_host(secret_inventory, monkeypatch):
    inv = secret_inventory()
    monkeypatch.delenv("SHOP_RELOAD_TOKEN")
    fleet = FakeFleet()
    with pytest.raises(ConsoleError) as caught:
        run_deploy(inv, DeployRequest(user=USER), connect=fleet.connect)
    assert (
        str(caught.value) == f"{inv.path}: secrets: reload_token: the environment variable SHOP_RELOAD_TOKEN is not set"
    )
    assert fleet.calls == []
    monkeypatch.setenv("SHOP_RELOAD_TOKEN", "short")
    with pytest.raises(ConsoleError, match="expected one line of at least 8 characters in \\$SHOP_RELOAD_TOKEN"):
        run_deploy(inv, DeployRequest(user=USER), connect=fleet.connect)
    assert fleet.calls == []


@pytest.mark.lab
def test_a_secret_reaches_a_real_host_on_stdin(lab_factory, tmp_path, monkeypatch):
    fleet = make_fleet(lab_factory, 2, tmp_path / "fleet")
    monkeypatch.setenv("SHOP_RELOAD_TOKEN", TOKEN)
    inv = fleet.inventory(
        secrets=[{"name": "reload_token", "env": "SHOP_RELOAD_TOKEN"}],
        restart="printf '%s|%s' {reload_token} \"$DEPLOY_SECRET_reload_token\" > {deploy_path}/secret-seen",
    )
    done = run_deploy(inv, DeployRequest(user=USER, override="first release"))
    assert done.result == "ok", done
    for host in fleet.hosts:
        assert fleet.sh(host, "cat /srv/www/secret-seen && rm /srv/www/secret-seen") == f"{TOKEN}|{TOKEN}"
