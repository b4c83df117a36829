import statistics

import pytest

from scripts.median import run


@pytest.mark.parametrize(
    "values, expected",
    [
        ([3, 1, 2], 2),
        ([7], 7),
        ([5, -1, 4, 10, 0], 4),
        ([2.5, 1.5, 3.5], 2.5),
    ],
)
def test_odd_length(values, expected):
    assert run({"values": values}) == {"median": expected, "count": len(values)}


@pytest.mark.parametrize(
    "values, expected",
    [
        ([1, 2, 3, 4], 2.5),
        ([4, 1], 2.5),
        ([10, 20, 30, 40, 50, 60], 35),
        ([-3, -1, 5, 7], 2),
    ],
)
def test_even_length_is_mean_of_middle_pair(values, expected):
    assert run({"values": values})["median"] == expected


def test_agrees_with_statistics_median():
    for values in ([9, 2, 7, 4], [1.25, 0.5, 3.0, 2.0, 8.5, 4.75], [0, 0, 1, 1]):
        assert run({"values": values})["median"] == statistics.median(values)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"values": []}, "non-empty"),
        ({}, "non-empty"),
        ({"values": [1, "2"]}, "not a finite number"),
        ({"values": [True]}, "not a finite number"),
        ({"values": [float("inf")]}, "not a finite number"),
    ],
)
def test_errors(params, message):
    with pytest.raises(ValueError, match=message):
        run(params)
