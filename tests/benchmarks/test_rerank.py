"""The re-ranking benchmark refuses bad arguments before any work, naming them."""

import pytest

from benchmarks import rerank


@pytest.mark.parametrize("argv, message", [
    (["--depths", "100,x"], "--depths '100,x': expected comma-separated integers"),
    (["--depths", "0"], "--depths '0': expected depths of at least 1"),
    (["--set", "model.towers.embedding_dim=8"], "expected ranking.<key>=<value>"),
    (["--set", "ranking.epochs=0"], "ranking.epochs"),
])
def test_bad_arguments_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        rerank.main([*argv, "--datasets", ""])
    assert message in capsys.readouterr().err
