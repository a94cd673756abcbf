"""The `sage` command: core subcommands, JSON output, error lines, and a generated plugin package."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sage_core.testing import CHECKS

SAGE = [sys.executable, "-c", "from sage_core.cli import main; main()"]


def sage(*args, env=None, cwd=None):
    return subprocess.run([*SAGE, *args], capture_output=True, text=True, env={**os.environ, **(env or {})},
                          cwd=cwd, timeout=120)


def test_version():
    from sage_core import __version__

    out = sage("--version")
    assert out.returncode == 0 and __version__ in out.stdout


def test_plugins_json_lists_toy_with_required_keys():
    rows = json.loads(sage("plugins", "--json").stdout)
    toy = next(row for row in rows if row["name"] == "toy")
    assert {"name", "version", "distribution", "status", "error"} <= set(toy)
    assert toy == {**toy, "version": "1.0.0", "distribution": "sage-irp", "status": "ok", "error": None}
    assert "sage_register_plugins" in toy["hooks"]


def test_plugins_table_shows_failed_plugin(tmp_path):
    info = tmp_path / "sage_broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sage-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[sage]\nbroken = sagetest_missing_module\n")
    env = {"PYTHONPATH": str(tmp_path)}
    rows = json.loads(sage("plugins", "--json", env=env).stdout)
    broken = next(row for row in rows if row["name"] == "broken")
    assert broken["status"] == "failed" and "sagetest_missing_module" in broken["error"]
    assert broken["distribution"] == "sage-broken"
    strict = sage("plugins", env={**env, "SAGE_STRICT_PLUGINS": "1"})
    assert strict.returncode == 2 and "broken" in strict.stderr


def test_check_prints_table_and_fails_on_unknown():
    ok = sage("check", "toy", "--json")
    results = json.loads(ok.stdout)
    assert ok.returncode == 0 and results and all(r["passed"] for r in results)
    bad = sage("check", "nope")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]  # one line
    assert "unknown plugin 'nope'" in bad.stderr and "toy" in bad.stderr


@pytest.mark.parametrize("args", [("no-such-command",), ("new-plugin", "Bad-Name")])
def test_errors_are_one_line_exit_2(args):
    out = sage(*args)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith("sage: error:")


def test_new_plugin_package_installs_registers_and_conforms(tmp_path):
    pkg, site = tmp_path / "pkg", tmp_path / "site"
    assert sage("new-plugin", "my_refiner", "--dir", str(pkg)).returncode == 0
    assert (pkg / "pyproject.toml").read_text().count('my_refiner = "sage_my_refiner"') == 1
    again = sage("new-plugin", "my_refiner", "--dir", str(pkg))
    assert again.returncode == 2 and "not empty" in again.stderr
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(pkg)], check=True, capture_output=True, timeout=300)
    env = {"PYTHONPATH": str(site)}
    rows = json.loads(sage("plugins", "--json", env=env).stdout)
    assert any(r["name"] == "my_refiner" and r["status"] == "ok" for r in rows)
    check = sage("check", "my_refiner", "--json", env=env)
    assert check.returncode == 0 and all(r["passed"] for r in json.loads(check.stdout))
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(pkg / "tests")],
                           capture_output=True, text=True, env={**os.environ, **env}, cwd=tmp_path, timeout=300)
    assert tests.returncode == 0 and f"{len(CHECKS)} passed" in tests.stdout  # one test per conformance check
