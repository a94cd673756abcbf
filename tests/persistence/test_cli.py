"""``sage sessions list|show|rm`` through the real ``sage`` entry point (sage_register_commands hook)."""

from __future__ import annotations

import json

import pytest

from persistence import SessionStore
from sage_core.cli import build_cli, main

from .helpers import numbered_snapshot


@pytest.fixture
def root(tmp_path):
    store = SessionStore(tmp_path / "s")
    store.create("alpha")
    store.checkpoint("alpha", numbered_snapshot(1))
    store.checkpoint("alpha", numbered_snapshot(2))
    store.create("beta")
    return tmp_path / "s"


def _sage(capsys, *argv):
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_sessions_group_comes_from_the_persistence_hook():
    """The persistence entry point implements sage_register_commands and adds `sessions`."""
    group = build_cli()
    assert "sessions" in group.commands
    assert set(group.commands["sessions"].commands) == {"list", "show", "rm"}


def test_list_json(capsys, root):
    code, out, err = _sage(capsys, "sessions", "list", "--root", str(root), "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert isinstance(rows, list) and {r["id"] for r in rows} == {"alpha", "beta"}
    alpha = next(r for r in rows if r["id"] == "alpha")
    for key in ("id", "plugins", "steps", "checkpoints", "bytes", "updated"):
        assert key in alpha
    assert alpha["plugins"] == {"a": "toy", "b": "other"} and alpha["steps"] == {"a": 2, "b": 4}
    assert alpha["checkpoints"] == [1, 2] and alpha["bytes"] > 0


def test_list_table_and_sage_home(capsys, root, monkeypatch):
    monkeypatch.setenv("SAGE_HOME", str(root.parent / "nowhere"))
    code, out, _ = _sage(capsys, "sessions", "list")
    assert code == 0 and "no sessions in" in out
    code, out, _ = _sage(capsys, "sessions", "list", "--root", str(root))
    assert code == 0 and "alpha" in out and "beta" in out


def test_show(capsys, root):
    code, out, err = _sage(capsys, "sessions", "show", "alpha", "--root", str(root), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["id"] == "alpha" and data["latest"] == 2 and data["energies"]["a"] == pytest.approx(1 / 3)
    code, out, _ = _sage(capsys, "sessions", "show", "alpha", "--root", str(root))
    assert code == 0 and "toy" in out and "checkpoint 2" in out


def test_show_reports_unreadable_checkpoints(capsys, root):
    (root / "alpha" / "ckpt-00000002" / "manifest.msgpack").write_bytes(b"\x00garbage")
    code, out, _ = _sage(capsys, "sessions", "show", "alpha", "--root", str(root), "--json")
    data = json.loads(out)
    assert code == 0 and data["latest"] == 1 and "ckpt 2" in data["problems"][0]


def test_rm_and_errors(capsys, root):
    code, out, _ = _sage(capsys, "sessions", "rm", "beta", "--root", str(root))
    assert code == 0 and "removed session beta" in out and not (root / "beta").exists()
    for argv in (["sessions", "rm", "beta", "--root", str(root)], ["sessions", "show", "zzz", "--root", str(root)],
                 ["sessions", "show", "../x", "--root", str(root)]):
        code, out, err = _sage(capsys, *argv)
        assert code == 2 and out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("sage: error:"), err
