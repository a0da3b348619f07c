import pytest

from models.hparams import HParams


def test_round_trip_through_plain_dict():
    hparams = HParams(embedding_dim=8, similarity="cosine", epochs=1)
    assert HParams.from_dict(hparams.to_dict()) == hparams


@pytest.mark.parametrize("values,message", [
    ({"embeding_dim": 8}, r"unknown key\(s\) \['embeding_dim'\]"),
    ({"embedding_dim": 0}, r"embedding_dim=0: expected a positive integer"),
    ({"similarity": "l2"}, r"similarity='l2': expected one of \('dot', 'cosine'\)"),
    ({"temperature": -1.0}, r"temperature=-1.0: expected a positive number"),
    ({"recency_half_life_days": -3}, r"recency_half_life_days=-3: expected a number >= 0"),
    ({"loss": "hinge"}, r"loss='hinge': expected one of \('softmax', 'bce'"),
    ({"mixed_negative_distribution": "zipf"}, r"mixed_negative_distribution='zipf'"),
    ({"num_hard_negatives": -1}, r"num_hard_negatives=-1: expected an integer >= 0"),
    ({"pair_negatives": 0}, r"pair_negatives=0: expected a positive integer"),
    ({"history_position_decay": 0}, r"history_position_decay=0: expected a number in \(0, 1\]"),
    ({"history_position_decay": 1.5}, r"history_position_decay=1.5: expected a number in"),
    ({"history_position_decay": 0.5, "history_pooling": "attention"},
     r"history_position_decay=0.5: only weights the mean pooling"),
    ({"history_last_items": -1}, r"history_last_items=-1: expected an integer >= 0"),
    ({"history_last_items": 11, "max_history": 10},
     r"history_last_items=11: expected at most max_history=10"),
])
def test_bad_values_name_the_key_the_value_and_the_expectation(values, message):
    with pytest.raises(ValueError, match=message):
        HParams.from_dict(values)
