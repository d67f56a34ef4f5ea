import math

from plasticlab.report.recipe import pearson, ranks


def test_pearson_known_values():
    assert math.isclose(pearson([1, 2, 3, 4], [2, 4, 6, 8]), 1.0)
    assert math.isclose(pearson([1, 2, 3, 4], [8, 6, 4, 2]), -1.0)
    # hand computed: x=[1,2,3], y=[1,3,2] → r = 0.5
    assert math.isclose(pearson([1, 2, 3], [1, 3, 2]), 0.5)
    assert pearson([1, 2], [3, 4]) is None  # fewer than 3 points
    assert pearson([1, 1, 1], [1, 2, 3]) is None  # no variance


def test_ranks_average_ties():
    assert ranks([10, 30, 20]) == [1, 3, 2]
    assert ranks([5, 5, 1, 7]) == [2.5, 2.5, 1, 4]
