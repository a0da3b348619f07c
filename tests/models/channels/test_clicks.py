import numpy as np

from models.channels.clicks import NOT_A_CANDIDATE, Catalogue, from_lists


def test_rows_keep_distinct_candidates_of_each_history():
    catalogue = Catalogue(["a", "b", "c"])
    rows = catalogue.rows([["b", "a", "b"], [], np.array([b"c", b"x", b""])])
    assert rows.toarray().tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 1]]


def test_from_lists_orders_by_time_and_marks_outside_items():
    catalogue = Catalogue(["a", "b"])
    clicks = from_lists(["u", "v", "u"], ["b", "zz", "a"], [30, 10, 20], catalogue)
    assert clicks.timestamps.tolist() == [10, 20, 30]
    assert clicks.items.tolist() == [NOT_A_CANDIDATE, 0, 1]
    assert clicks.num_users == 2 and clicks.num_items == 2


def test_matrix_counts_a_repeated_click_once_and_masks():
    catalogue = Catalogue(["a", "b"])
    clicks = from_lists(["u", "u", "v"], ["a", "a", "b"], [1, 2, 3], catalogue)
    assert clicks.matrix().toarray().tolist() == [[1, 0], [0, 1]]
    assert clicks.matrix(clicks.timestamps < 3).toarray().tolist() == [[1, 0], [0, 0]]
