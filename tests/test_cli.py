"""CLI: the happy paths and every bad-input path (one line, exit code 2, nothing lost)."""

import sqlite3
import subprocess
import sys

import pytest

from archgym.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_envs_lists_ids_with_sizes(capsys):
    code, out, _ = run_cli(capsys, "envs")
    assert code == 0
    assert "archgym/Systolic-v0" in out and "2,332,800" in out


def test_run_export_plot(tmp_path, capsys):
    db = tmp_path / "r.db"
    code, out, _ = run_cli(capsys, "run", "archgym/Systolic-v0", "--budget", "60", "--seed", "2", "--db", str(db),
                           "--quiet", "--target", "area_mm2<=10")
    assert code == 0
    assert "best design:" in out and "latency_s = " in out and " s\n" in out and "mm^2" in out
    code, out, _ = run_cli(capsys, "export", "--db", str(db), "--out", str(tmp_path / "r.csv"))
    assert code == 0 and "wrote 60 rows" in out
    code, out, _ = run_cli(capsys, "plot", "--db", str(db), "--out", str(tmp_path / "r.png"))
    assert code == 0 and (tmp_path / "r.png").stat().st_size > 10_000
    code, out, _ = run_cli(capsys, "runs", "--db", str(db))
    assert code == 0 and "random" in out


def test_eval_and_scalesim_mode(capsys):
    code, out, _ = run_cli(capsys, "eval", "archgym/Systolic-v0", "rows=8", "cols=8", "dataflow=os",
                           "--sim-opt", "mode=scalesim", "--workload", "opt-125m/decode")
    assert code == 0 and "cycles = " in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["run", "archgym/Nope-v0"], "unknown env id 'archgym/Nope-v0'"),
        (["run", "archgym/Systolic-v0", "--agent", "nope"], "unknown agent 'nope'"),
        (["eval", "archgym/Systolic-v0", "rows=7"], "rows=7 is not allowed; allowed: {8, 16"),
        (["eval", "archgym/Systolic-v0", "rowz=8"], "unknown parameter 'rowz'"),
        (["eval", "archgym/Systolic-v0", "rows"], "malformed design assignment 'rows'"),
        (["run", "archgym/Systolic-v0", "--fix", "dataflow=xx"], "dataflow='xx' is not allowed"),
        (["run", "archgym/Systolic-v0", "--objective", "lat ency"], "malformed objective"),
        (["run", "archgym/Systolic-v0", "--objective", "tokens_per_s"], "objective metric 'tokens_per_s'"),
        (["run", "archgym/Systolic-v0", "--target", "area<=2"], "no unit suffix"),
        (["run", "archgym/Systolic-v0", "--budget", "0"], "--budget=0 is not allowed"),
        (["run", "archgym/Systolic-v0", "--budget", "x"], "invalid int value: 'x'"),
        (["run", "archgym/Systolic-v0", "--db", "/no/such/dir/r.db"], "does not exist"),
        (["run", "archgym/Systolic-v0", "--workload", "gpt-9/prefill"], "workload 'gpt-9/prefill'"),
        (["run", "archgym/Systolic-v0", "--sim-opt", "mode=fast"], "mode='fast'"),
        (["export", "--db", "/no/such.db", "--out", "x.csv"], "does not exist"),
        (["bogus"], "invalid choice: 'bogus'"),
    ],
)
def test_bad_input_one_line_exit_2(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("archgym: error: ") and err.count("\n") == 1, err
    assert needle in err
    assert "Traceback" not in err


def test_bad_input_never_loses_logged_rows(tmp_path, capsys):
    db = tmp_path / "r.db"
    assert main(["run", "archgym/Systolic-v0", "--budget", "30", "--db", str(db), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["run", "archgym/Systolic-v0", "--budget", "30", "--db", str(db), "--objective", "nope"]) == 2
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "x.csv"), "--format", "xml"]) == 2
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM evals").fetchone()[0] == 30


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "archgym", "run", "archgym/Nope-v0"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("archgym: error: unknown env id")


def test_agent_hyperparameters_are_typed_run_options(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["run", "archgym/Systolic-v0", "--agent", "ga", "--help"])
    out = capsys.readouterr().out
    assert "hyperparameters of agent 'ga'" in out and "--pop-size POP_SIZE" in out
    code, out, err = run_cli(capsys, "run", "archgym/Systolic-v0", "--agent", "ga", "--pop-size", "x")
    assert code == 2 and "argument --pop-size: invalid int value: 'x'" in err
    code, out, err = run_cli(capsys, "run", "archgym/Systolic-v0", "--agent", "random", "--pop-size", "8")
    assert code == 2 and "unrecognized arguments: --pop-size 8" in err
    db = tmp_path / "ga.db"
    code, out, _ = run_cli(capsys, "run", "archgym/Systolic-v0", "--agent", "ga", "--pop-size", "8",
                           "--budget", "20", "--db", str(db), "--quiet")
    assert code == 0
    import sqlite3

    params = sqlite3.connect(db).execute("SELECT params FROM runs").fetchone()[0]
    assert '"pop_size": 8' in params


def test_eval_layers_prints_the_per_layer_breakdown(capsys):
    code, out, _ = run_cli(capsys, "eval", "archgym/BitMoD-v0", "--workload", "opt-125m/decode", "--layers")
    assert code == 0
    lines = out.splitlines()
    head = next(i for i, l in enumerate(lines) if l.startswith("layer "))
    assert lines[head].split()[:4] == ["layer", "cycles", "latency_s", "energy_j"]
    names = [l.split()[0] for l in lines[head + 1:]]
    assert names[:4] == ["q_proj", "k_proj", "v_proj", "o_proj"] and "lm_head" in names
    total = next(l for l in lines if l.startswith("cycles = "))
    layer_sum = sum(int(l.split()[1].replace(",", "")) for l in lines[head + 1:] if not l.startswith("unit:"))
    assert total == f"cycles = {layer_sum:,} cycles"
