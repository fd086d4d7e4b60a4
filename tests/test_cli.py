"""The CLI entry point: static command registration, --version, usage errors."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import dse
import dse.commands
from dse.cli import app


def test_every_command_module_is_registered_by_the_entry_point():
    """A command module that dse.cli does not import would silently vanish from the CLI."""
    import dse.cli

    modules = {m.name for m in pkgutil.iter_modules(dse.commands.__path__) if not m.name.startswith("_")}
    imported = {name.rsplit(".", 1)[-1] for name in sys.modules if name.startswith("dse.commands.")}
    assert modules and modules <= imported, modules - imported
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert {"catalog", "describe", "evaluate", "roofline", "run", "pareto", "export", "dashboard",
            "validate", "calibrate"} <= names
    assert dse.cli.main


def test_the_command_map_is_what_the_modules_register():
    """`dse.cli.COMMANDS` (which module `main` imports for a command) names every module and exactly the
    commands it registers, in help order."""
    import dse.cli

    dse.cli.load_commands()
    got: dict[str, list[str]] = {}
    for c in app.registered_commands:
        got.setdefault(c.callback.__module__.rsplit(".", 1)[-1], []).append(c.name or c.callback.__name__)
    for g in app.registered_groups:
        owner = next(m for name, m in sys.modules.items() if name.startswith("dse.commands.")
                     and any(v is g.typer_instance for v in vars(m).values()))
        got.setdefault(owner.__name__.rsplit(".", 1)[-1], []).append(g.name)
    assert {m: sorted(v) for m, v in got.items()} == {m: sorted(v) for m, v in dse.cli.COMMANDS.items()}
    assert list(got) == list(dse.cli.COMMANDS)  # help order: modules in the order they register


def test_dse_run_imports_only_its_command_module():
    """`dse run` loads dse.commands.study alone (the other commands' dependencies cost a run nothing), and
    --help, no command or an unknown one load them all."""
    code = ("import sys, dse.cli; m = dse.cli.modules_for(sys.argv[1:]); dse.cli.load_commands(m); "
            "print(m, sorted(n.rsplit('.', 1)[-1] for n in sys.modules if n.startswith('dse.commands.')))")
    for argv, want in ((["dse", "run", "x.yaml"], "['study'] ['_console', 'study']"),
                       (["dse", "--help"], "None"), (["dse"], "None"), (["dse", "frobnicate"], "None")):
        res = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith(want), (argv, res.stdout)
    res = subprocess.run([sys.executable, "-c", code, "dse", "run"], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "_DSE_COMPLETE": "complete_bash"})
    assert res.stdout.startswith("None"), res.stdout


def test_version_flag_prints_the_package_version():
    res = subprocess.run([sys.executable, "-m", "dse", "--version"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"dse {dse.__version__}"


def test_unknown_command_exits_2_without_traceback():
    res = subprocess.run([sys.executable, "-m", "dse", "frobnicate"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "frobnicate" in res.stderr


def test_output_paths_that_cannot_be_files_exit_2_before_any_work(tmp_path):
    """`--out`/`--html` naming a folder, or under a file, is exit 2 naming the option (no traceback)."""
    folder = tmp_path / "adir"
    folder.mkdir()
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [["validate", "--split", "test", "--html", str(folder)],
             ["dashboard", str(tmp_path / "no-run"), "--out", str(folder)],
             ["dashboard", str(tmp_path / "no-run"), "--out", str(afile / "x.html")]]
    for args in cases:
        res = subprocess.run([sys.executable, "-m", "dse", *args], capture_output=True, text=True, timeout=300)
        assert res.returncode == 2, (args, res.stderr)
        assert "Traceback" not in res.stderr and ("--html" in res.stderr or "--out" in res.stderr), res.stderr
