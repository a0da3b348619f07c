"""The item2vec sweep's variants are real settings, and a wrong one is refused."""

import pytest

from benchmarks import item2vec
from models.channels.config import RecallConfig


@pytest.mark.parametrize("name", sorted(item2vec.VARIANTS))
def test_every_variant_is_a_valid_item2vec_setting(name):
    base = RecallConfig().item2vec
    variant = base.replace(**item2vec.VARIANTS[name])
    for key, value in item2vec.VARIANTS[name].items():
        assert getattr(variant, key) == value


def test_an_unknown_variant_is_refused_naming_it(capsys):
    with pytest.raises(SystemExit):
        item2vec.main(["--variants", "defaults,gap_2h", "--datasets", ""])
    assert "unknown ['gap_2h']" in capsys.readouterr().err
