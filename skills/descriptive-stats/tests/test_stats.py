import statistics

import pytest

from scripts.stats import quantile, run

DATA = [2, 4, 4, 4, 5, 5, 7, 9, 100]


def test_known_dataset():
    out = run({"values": DATA})
    assert out["count"] == 9 and out["sum"] == 140 and isinstance(out["sum"], int)
    assert out["mean"] == pytest.approx(140 / 9)
    assert out["median"] == 5
    assert out["modes"] == [4] and out["mode_count"] == 3
    assert (out["min"], out["max"], out["range"]) == (2, 100, 98)
    assert (out["q1"], out["q3"], out["iqr"]) == (4.0, 7.0, 3.0)
    assert out["outliers"] == {"k": 1.5, "lower_fence": -0.5, "upper_fence": 11.5, "values": [100], "indices": [8]}


def test_matches_statistics_module():
    values = [3.1, -2.0, 7.25, 7.25, 0.0, 12.5, 4.4, 9.9]
    out = run({"values": values})
    assert out["variance_sample"] == pytest.approx(statistics.variance(values))
    assert out["stdev_sample"] == pytest.approx(statistics.stdev(values))
    assert out["variance_population"] == pytest.approx(statistics.pvariance(values))
    assert out["stdev_population"] == pytest.approx(statistics.pstdev(values))
    assert out["median"] == pytest.approx(statistics.median(values))
    assert out["mean"] == pytest.approx(statistics.fmean(values))
    assert [out["q1"], out["median"], out["q3"]] == pytest.approx(statistics.quantiles(values, n=4, method="inclusive"))


def test_even_length_median_and_custom_quantiles():
    out = run({"values": [10, 1, 4, 3], "quantiles": [0, 0.1, 0.5, 0.9, 1]})
    assert out["median"] == 3.5
    assert out["quantiles"] == [
        {"q": 0, "value": 1},
        {"q": 0.1, "value": pytest.approx(1.6)},
        {"q": 0.5, "value": 3.5},
        {"q": 0.9, "value": pytest.approx(8.2)},
        {"q": 1, "value": 10},
    ]


def test_multiple_modes_and_no_mode():
    assert run({"values": [1, 1, 2, 2, 3]})["modes"] == [1, 2]
    distinct = run({"values": [1, 2, 3]})
    assert distinct["modes"] == [] and distinct["mode_count"] == 1


def test_single_value():
    out = run({"values": [42]})
    assert out["mean"] == out["median"] == out["min"] == out["max"] == 42
    assert out["modes"] == [42]
    assert out["variance_sample"] is None and out["stdev_sample"] is None
    assert out["variance_population"] == 0 and out["stdev_population"] == 0
    assert out["skewness"] is None
    assert out["outliers"]["values"] == []


def test_skewness():
    assert run({"values": [1, 2, 3, 4, 5]})["skewness"] == pytest.approx(0.0)
    assert run({"values": [1, 1, 1, 1, 10]})["skewness"] == pytest.approx(2.2360679775)
    assert run({"values": [5, 5, 5]})["skewness"] is None


def test_outlier_k_and_both_sides():
    values = [-50, 10, 11, 12, 13, 14, 80]
    out = run({"values": values})
    assert out["outliers"]["values"] == [-50, 80] and out["outliers"]["indices"] == [0, 6]
    wide = run({"values": values, "outlier_k": 30})
    assert wide["outliers"]["values"] == []


def test_float_sum_is_exact():
    out = run({"values": [0.1] * 10})
    assert out["sum"] == 1.0 and out["mean"] == pytest.approx(0.1)


def test_quantile_helper():
    assert quantile([1, 2, 3, 4], 0.5) == 2.5
    assert quantile([1, 2, 3, 4], 1) == 4
    assert quantile([7], 0.3) == 7


@pytest.mark.parametrize(
    "params, message",
    [
        ({"values": []}, "non-empty list"),
        ({}, "non-empty list"),
        ({"values": [1, "2"]}, r"values\[1\] is not a number"),
        ({"values": [True]}, "not a number"),
        ({"values": [1, float("nan")]}, "not finite"),
        ({"values": [1], "quantiles": [1.5]}, "between 0 and 1"),
        ({"values": [1], "quantiles": 0.5}, "between 0 and 1"),
        ({"values": [1], "outlier_k": 0}, "positive number"),
        ({"values": [0] * 1_000_001}, "too many values"),
    ],
)
def test_errors(params, message):
    with pytest.raises(ValueError, match=message):
        run(params)
