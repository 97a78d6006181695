"""benchmarks.main_job: its per-run cache is reused only by the same command."""
from __future__ import annotations

import json

import pytest

from benchmarks import main_job
from hwnas.errors import UsageError


def _cached(output, table):
    cmd = main_job.search_command(table, 0, None, output)
    record = {"command": " ".join(["python"] + cmd[1:]), "seed": 0, "latency_weight": 0.1, "wall_s": 1.0,
              "cpu_s": 1.0, "genotype": "cdnet:3-5-1,3-5-1,3-5-1,3-5-1,3-5-1,3-5-1", "mean_entropy_fraction": 0.2}
    output.mkdir(parents=True)
    (output / "run.json").write_text(json.dumps(record))
    return record


def test_a_finished_run_is_reused_by_the_same_command_only(tmp_path, monkeypatch):
    monkeypatch.setattr(main_job.subprocess, "run", lambda *a, **k: pytest.fail("nothing should run"))
    record = _cached(tmp_path / "w-seed0", "rtx2080")
    assert main_job.run_one("rtx2080", 0, None, tmp_path / "w-seed0") == record
    with pytest.raises(UsageError, match="the finished run in .* was 'python -m hwnas.search --latency-table rtx2080"):
        main_job.run_one("t4", 0, None, tmp_path / "w-seed0")  # another table: not this run's result


@pytest.mark.parametrize("argv", [["--latency-weights", ","], ["--latency-weights", ""], ["--latency-weights", "0,0"],
                                  ["--latency-table", "no-such-table"]])
def test_bad_weights_or_table_are_refused_before_anything_is_written(argv, tmp_path, capsys):
    out = tmp_path / "out"
    assert main_job.main(argv + ["--output", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: ") and not out.exists()


def test_an_interrupted_run_is_cleared_but_nobody_elses_files(tmp_path):
    from hwnas.errors import OutputError

    run = tmp_path / "w-seed0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"x")
    (run / "search.log").write_text("log")
    (run / ".search_report.json.abc.tmp").write_text("")
    main_job.clear_interrupted(run)
    assert run.is_dir() and list(run.iterdir()) == []
    (run / "search.log").write_text("log")
    (run / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"files no search wrote \(notes.txt\), .*expected the folder of an "):
        main_job.clear_interrupted(run)
    assert (run / "notes.txt").read_text() == "mine" and (run / "search.log").is_file()
    link = tmp_path / "link"
    link.symlink_to(run)
    with pytest.raises(OutputError, match="not a folder of this benchmark"):
        main_job.clear_interrupted(link)


def test_latency_weights_beyond_what_the_search_accepts_are_refused_before_any_run(tmp_path, capsys):
    from benchmarks import main_job

    assert main_job.main(["--latency-weights", "1e308", "--output", str(tmp_path / "o")]) == 2
    assert "expected latency weights between 0 and 1000000 per ms" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
