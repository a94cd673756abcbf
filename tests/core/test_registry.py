"""Entry-point discovery from real distributions on disk, isolation of broken plugins, strict mode."""

import sys
import textwrap

import pytest

from sage_core import PluginLoadError, Registry, UnknownPluginError

GOOD = '''
from sage_core import IRPPlugin, IRPState, hookimpl

class Echo(IRPPlugin):
    name = "{name}"
    version = "2.1.0"
    api_version = {api}

    def init_state(self, x0, ctx):
        return IRPState(x=float(x0))

    def energy(self, state):
        return abs(state.x)

    def step(self, state{extra}):
        return state.evolve(x=state.x / 2, step=state.step + 1)

@hookimpl
def sage_register_plugins(register):
    register(Echo)
'''


def make_dist(site, dist, module, source):
    """Write an importable module and a dist-info with a `sage` entry point pointing at it."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"  # wheel naming: no dash in the name
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[sage]\n{module} = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("sagetest_")]:
        del sys.modules[name]


def load(**kwargs):
    registry = Registry(disabled=kwargs.pop("disabled", ()), strict=kwargs.pop("strict", False))
    registry.load_entrypoints()
    return registry


def test_installed_distribution_is_discovered(site):
    make_dist(site, "sage-echo", "sagetest_echo", GOOD.format(name="echo", api=1, extra=", budget=None"))
    registry = load()
    item = registry.plugins["echo"]
    assert item.distribution == "sage-echo" and item.version == "2.1.0"
    assert registry.hooks_of("sagetest_echo") == ["sage_register_plugins"]
    assert registry.create("echo").init_state(4, {}).x == 4.0
    assert "toy" in registry.plugins  # the built-in plugin arrives through the same group


BROKEN = {
    "import_error": ("raise ImportError('missing dependency frobnicate')", "frobnicate"),
    "bad_signature": (GOOD.format(name="sig", api=1, extra=", budget, extra_required"), "must accept"),
    "wrong_api": (GOOD.format(name="future", api=99, extra=""), "supports 1..1"),
    "bad_hook_args": ("from sage_core import hookimpl\n@hookimpl\ndef sage_register_plugins(register, nope):\n    pass\n",
                      "invalid hooks"),
    "unknown_hook": ("from sage_core import hookimpl\n@hookimpl\ndef sage_register_widgets(register):\n    pass\n",
                     "unknown hook"),
}


@pytest.mark.parametrize("variant", sorted(BROKEN))
def test_broken_plugin_is_reported_and_skipped(site, variant, capsys):
    source, fragment = BROKEN[variant]
    make_dist(site, f"sage-{variant}", f"sagetest_{variant}", source)
    make_dist(site, "sage-echo", "sagetest_echo", GOOD.format(name="echo", api=1, extra=""))
    registry = load()
    (failure,) = registry.failures
    assert failure.source == f"sagetest_{variant}" and failure.distribution == f"sage-{variant}"
    assert fragment in failure.error and "SAGE_DISABLE_PLUGINS" in failure.hint
    assert f"sagetest_{variant}" not in registry.sources()
    assert registry.pm.get_plugin(f"sagetest_{variant}") is None  # nothing left half-registered
    assert "echo" in registry.plugins  # the host keeps working
    assert f"sagetest_{variant}" in capsys.readouterr().err
    with pytest.raises(PluginLoadError, match=fragment):
        load(strict=True)


def test_duplicate_name_keeps_first_and_unregisters_second(site):
    make_dist(site, "sage-echo", "sagetest_echo", GOOD.format(name="echo", api=1, extra=""))
    make_dist(site, "sage-echo2", "sagetest_echo2", GOOD.format(name="echo", api=1, extra=""))
    registry = load()
    assert registry.plugins["echo"].distribution == "sage-echo"
    (failure,) = registry.failures
    assert failure.distribution == "sage-echo2" and "already registered by 'sage-echo'" in failure.error
    assert registry.pm.get_plugin("sagetest_echo2") is None


def test_strict_mode_from_environment(site, monkeypatch):
    make_dist(site, "sage-import_error", "sagetest_import_error", "raise ImportError('nope')")
    monkeypatch.setenv("SAGE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="SAGE_STRICT_PLUGINS"):
        Registry().load_entrypoints()


def test_disable_by_entry_point_and_by_plugin_name(site, monkeypatch):
    make_dist(site, "sage-import_error", "sagetest_import_error", "raise ImportError('nope')")
    monkeypatch.setenv("SAGE_DISABLE_PLUGINS", "sagetest_import_error, toy")
    registry = Registry()
    registry.load_entrypoints()
    assert registry.failures == [] and "toy" not in registry.plugins
    with pytest.raises(UnknownPluginError, match="unknown plugin 'toy'"):
        registry.create("toy")


def test_in_process_registration_and_removal(sage_registry):
    import types

    from sage_core import hookimpl
    from plugins.toy import QuadraticDescent

    module = types.SimpleNamespace(sage_register_plugins=hookimpl(lambda register: register(QuadraticDescent)))
    module.sage_register_bridges = hookimpl(lambda register: register(lambda s: s.x, name="identity"))
    assert sage_registry.add(module, name="inproc")
    assert sage_registry.plugin_class("toy") is QuadraticDescent
    assert sage_registry.get("bridge", "identity") is not None
    sage_registry.remove("inproc")
    assert sage_registry.plugins == {} and sage_registry.items("bridge") == {}
    assert not sage_registry.pm.get_plugins()


def test_failed_module_leaves_no_partial_registrations(sage_registry):
    import types

    from sage_core import hookimpl
    from plugins.toy import QuadraticDescent

    def register_two(register):
        register(QuadraticDescent)
        register(object)  # invalid: no name

    module = types.SimpleNamespace(sage_register_plugins=hookimpl(register_two))
    assert not sage_registry.add(module, name="half")
    assert sage_registry.plugins == {} and not sage_registry.pm.get_plugins()
    assert "name" in sage_registry.failures[0].error


def test_backends_sinks_and_commands_are_contributed_through_hooks(sage_registry):
    import types

    import click
    from click.testing import CliRunner

    from sage_core import MemorySink, hookimpl
    from sage_core.cli import build_cli

    @click.command("hello")
    def hello():
        click.echo("hello from a plugin")

    module = types.SimpleNamespace(
        sage_register_backends=hookimpl(lambda register: register(lambda: "backend", name="mine")),
        sage_telemetry_sinks=hookimpl(lambda register: register(MemorySink, name="memory")),
        sage_register_commands=hookimpl(lambda cli: cli.add_command(hello)),
    )
    assert sage_registry.add(module, name="contrib")
    assert sage_registry.get("backend", "mine")() == "backend"
    assert sage_registry.get("sink", "memory") is MemorySink
    group = build_cli(sage_registry)
    result = CliRunner().invoke(group, ["hello"])
    assert result.exit_code == 0 and "hello from a plugin" in result.output
    assert "hello" not in build_cli(Registry(disabled=())).commands  # the core group is not mutated
    with pytest.raises(UnknownPluginError, match="unknown backend 'theirs'; registered: mine"):
        sage_registry.get("backend", "theirs")
