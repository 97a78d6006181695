"""The run log of search and train (hwnas._runlog): info held until the run is accepted, then written to the run's
log file with the held lines first; the file is closed and detached when the command returns."""
from __future__ import annotations

import logging

import pytest

from hwnas._runlog import run_log


def test_held_lines_go_to_the_accepted_runs_file_and_nothing_after_the_run(tmp_path, capsys):
    log_file = tmp_path / "run" / "x.log"
    with run_log() as log:
        logging.getLogger("hwnas.data").info("read 12 images")
        logging.getLogger("hwnas.data").warning("3 images skipped")
        assert capsys.readouterr().err.count("\n") == 1  # the warning at once, the info line held
        log.accept(log_file)
        logging.getLogger("hwnas.search").info("epoch 1")
    logging.getLogger("hwnas.search").info("after the command")  # a later caller in the same process
    lines = log_file.read_text().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == ["read 12 images", "epoch 1"]
    assert not any(getattr(h, "baseFilename", None) == str(log_file) for h in logging.getLogger().handlers)


def test_a_refused_run_opens_no_file_and_prints_only_warnings(tmp_path, capsys):
    with pytest.raises(RuntimeError), run_log():
        logging.getLogger("hwnas.data").info("read 12 images")
        raise RuntimeError("refused")
    assert list(tmp_path.iterdir()) == [] and "read 12 images" not in capsys.readouterr().err
    logging.getLogger("hwnas").info("later")  # the held lines of the refused run are not replayed later
    assert "read 12 images" not in capsys.readouterr().err


def test_a_process_without_a_file_shows_only_its_level(capsys):
    with run_log() as log:
        logging.getLogger("hwnas.data").info("read 12 images")
        log.accept(None, logging.WARNING)  # a non-main rank of a distributed search
        logging.getLogger("hwnas.search").info("epoch 1")
        logging.getLogger("hwnas.search").warning("slow step")
    err = capsys.readouterr().err
    assert "slow step" in err and "read 12 images" not in err and "epoch 1" not in err


def test_the_callers_logging_set_up_is_given_back(tmp_path):
    """Found by an attack: after a command returned, a library caller's INFO lines still went to stderr through
    the handler the command had installed."""
    root = logging.getLogger()
    mine = logging.NullHandler()
    before = (list(root.handlers), root.level)
    root.addHandler(mine)
    root.setLevel(logging.ERROR)
    try:
        with run_log() as log:
            assert mine not in root.handlers
            log.accept(tmp_path / "x.log")
        assert root.handlers == [*before[0], mine] and root.level == logging.ERROR
    finally:
        root.removeHandler(mine)
        root.setLevel(before[1])
