"""Third-party envs (issue #13 item 4): a pip-installed package's ``archgym.envs`` entry point
and ``--import MODULE`` both put envs into every command."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).parent / "data" / "archgym_plugin_demo"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The demo package installed by pip into a folder of its own (no network: no build
    isolation, no dependencies), put on PYTHONPATH for the commands below."""
    import shutil

    target = tmp_path_factory.mktemp("site")
    src = tmp_path_factory.mktemp("src") / "demo"
    shutil.copytree(DEMO, src)  # setuptools writes build/ and *.egg-info next to the sources: not in the checkout
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(src)],
                          capture_output=True, text=True, cwd=src)
    assert proc.returncode == 0, proc.stderr
    assert list(target.glob("archgym_plugin_demo-*.dist-info/entry_points.txt"))
    return target


def _archgym(site, *args, cwd=None, extra_path=()):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), *map(str, extra_path)]))
    return subprocess.run([sys.executable, "-m", "archgym", *args], capture_output=True, text=True, env=env,
                          cwd=cwd)


@pytest.mark.slow
def test_installed_plugin_env_works_with_every_command(site, tmp_path):
    out = _archgym(site, "envs")
    assert out.returncode == 0 and "demo/Toy-v0" in out.stdout and "12" in out.stdout, out.stderr
    out = _archgym(site, "describe", "demo/Toy-v0")
    assert out.returncode == 0 and "lanes: {8, 16, 32, 64}" in out.stdout
    out = _archgym(site, "eval", "demo/Toy-v0", "lanes=64")
    assert out.returncode == 0 and "latency_s = " in out.stdout
    db = tmp_path / "r.db"
    out = _archgym(site, "run", "demo/Toy-v0", "--agent", "ga", "--budget", "12", "--db", str(db), "--quiet")
    assert out.returncode == 0 and "best design: lanes=64, clock_mhz=400" in out.stdout, out.stderr
    spec = tmp_path / "s.yaml"
    spec.write_text("budget: 6\nseeds: 2\nenvs: [demo/Toy-v0]\nagents: [random]\n")
    out = _archgym(site, "sweep", str(spec), "--db", str(db), "--workers", "2", "--quiet")
    assert out.returncode == 0 and "2 run now, 0 failed" in out.stdout, out.stdout + out.stderr


def test_a_broken_plugin_does_not_break_archgym(site, tmp_path):
    bad = tmp_path / "bad"
    (bad / "broken_plugin-0.1.dist-info").mkdir(parents=True)
    (bad / "broken_plugin-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\n"
                                                                  "Version: 0.1\n")
    (bad / "broken_plugin-0.1.dist-info" / "entry_points.txt").write_text("[archgym.envs]\nbroken = no_such_mod:f\n")
    out = _archgym(site, "envs", extra_path=[bad])
    assert out.returncode == 0 and "demo/Toy-v0" in out.stdout
    assert "plugin 'broken' failed to load: no_such_mod:f: ModuleNotFoundError" in out.stdout


def test_import_option_registers_a_module_of_ones_own(site, tmp_path):
    (tmp_path / "my_accel.py").write_text(
        "import archgym\n"
        "archgym.register_env('mine/Sys-v0', 'simulators.systolic:SystolicSimulator', workload='opt-125m/decode',\n"
        "                     objective='latency_s', description='mine')\n")
    for argv in (["--import", "my_accel", "envs"], ["envs", "--import", "my_accel"]):
        out = _archgym(site, *argv, extra_path=[tmp_path])
        assert out.returncode == 0 and "mine/Sys-v0" in out.stdout, out.stderr
    out = _archgym(site, "eval", "mine/Sys-v0", "--import", "my_accel", extra_path=[tmp_path])
    assert out.returncode == 0 and "minimize latency_s" in out.stdout
    out = _archgym(site, "eval", "mine/Sys-v0", "--import", "no_such_module_xyz")
    assert out.returncode == 2 and out.stderr.strip() == (
        "archgym: error: --import no_such_module_xyz: cannot import it (No module named 'no_such_module_xyz'); "
        "it must be installed or in a folder on PYTHONPATH")
    out = _archgym(site, "eval", "mine/Sys-v0")
    assert out.returncode == 2 and "archgym --import MODULE" in out.stderr
