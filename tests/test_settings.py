import os
from pathlib import Path

import pytest

from ranker.settings import Settings


def test_defaults_then_env_then_flags():
    settings = Settings.load(
        ["--port", "6000", "--model-repository", "/models"],
        {"RANKER_PORT": "5000", "RANKER_EXPLORATION": "0.2"},
    )
    assert settings.port == 6000
    assert settings.exploration == 0.2
    assert settings.model_repository == Path("/models")
    assert settings.max_top_k == Settings().max_top_k


def test_bad_env_value_names_the_variable():
    with pytest.raises(ValueError, match="RANKER_MAX_HISTORY"):
        Settings.load([], {"RANKER_MAX_HISTORY": "many"})


def test_switches_read_yes_and_no():
    assert Settings.load(["--echo-rpc", "yes"], {}).echo_rpc is True
    assert Settings.load([], {"RANKER_ECHO_RPC": "false"}).echo_rpc is False
    with pytest.raises(ValueError, match="RANKER_ECHO_RPC"):
        Settings.load([], {"RANKER_ECHO_RPC": "maybe"})


def test_negative_limit_is_refused():
    with pytest.raises(ValueError, match="max_candidates"):
        Settings(max_candidates=-1)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"workers": 0}, "workers must be at least 1"),
        ({"workers": 4, "worker_port_base": 65534}, "leave room for 4 ports"),
        ({"max_queued_share": 1.5}, "max_queued_share must be at most 1"),
    ],
)
def test_bad_settings_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        Settings(**fields)


def test_catalogue_flag_and_bad_catalogue_exit_cleanly(tmp_path, capsys):
    from ranker.cli import main

    bad = tmp_path / "items.csv"
    bad.write_text("id,title\n1,candle\n")
    assert main(["--catalogue", str(bad)]) == 2
    assert "needs the columns item_id and text" in capsys.readouterr().err
    assert main(["--catalogue", str(tmp_path / "missing.csv")]) == 2


@pytest.mark.parametrize(("operator", "served"), [(None, "false"), ("true", "true")])
def test_the_tokenizer_pool_stays_off_unless_the_operator_turns_it_on(
    monkeypatch, operator, served
):
    from threadpoolctl import threadpool_info, threadpool_limits

    from ranker.cli import one_thread_per_job

    if operator is None:
        monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    else:
        monkeypatch.setenv("TOKENIZERS_PARALLELISM", operator)
    with threadpool_limits(limits=None):  # leaves the test process's BLAS as it found it
        one_thread_per_job()
        blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert os.environ["TOKENIZERS_PARALLELISM"] == served
    assert blas and set(blas) == {1}
