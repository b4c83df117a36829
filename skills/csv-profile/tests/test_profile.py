import pytest

from scripts.profile import run


def col(result, name):
    return next(c for c in result["columns"] if c["name"] == name)


def test_basic_types_and_stats():
    out = run({"csv": "id,price,paid,day,city\n1,9.5,true,2024-01-05,Oslo\n2,,false,2024-02-10,Rome\n3,12,TRUE,2024-03-01,Oslo\n"})
    assert out["row_count"] == 3
    assert out["column_count"] == 5
    assert out["delimiter"] == ","
    assert out["ragged_rows"] == 0
    assert [c["name"] for c in out["columns"]] == ["id", "price", "paid", "day", "city"]

    ident = col(out, "id")
    assert ident["type"] == "int"
    assert (ident["min"], ident["max"], ident["mean"]) == (1, 3, 2.0)
    assert isinstance(ident["min"], int)

    price = col(out, "price")
    assert price["type"] == "float"
    assert price["missing"] == 1 and price["non_missing"] == 2
    assert price["min"] == 9.5 and price["max"] == 12.0 and price["mean"] == 10.75

    paid = col(out, "paid")
    assert paid["type"] == "bool"
    assert paid["distinct"] == 3  # "true" and "TRUE" are distinct raw values
    assert "mean" not in paid

    day = col(out, "day")
    assert day["type"] == "date"
    assert (day["min"], day["max"]) == ("2024-01-05", "2024-03-01")

    city = col(out, "city")
    assert city["type"] == "string"
    assert city["distinct"] == 2
    assert city["top_values"][0] == {"value": "Oslo", "count": 2}


def test_missing_tokens_and_empty_column():
    out = run({"csv": "a,b\nNA,\nnull,\n5,  \nN/A,\n"})
    a = col(out, "a")
    assert a["missing"] == 3 and a["non_missing"] == 1
    assert a["type"] == "int" and a["mean"] == 5.0
    b = col(out, "b")
    assert b["type"] == "empty"
    assert b["missing"] == 4 and b["distinct"] == 0 and b["top_values"] == []
    assert "min" not in b


def test_explicit_delimiter_and_sniffing():
    explicit = run({"csv": "name;age\nAda;36\nAlan;41\n", "delimiter": ";"})
    assert explicit["delimiter"] == ";"
    assert col(explicit, "age")["mean"] == 38.5
    assert run({"csv": "x\ty\n1\t2\n3\t4\n"})["delimiter"] == "\t"
    assert run({"csv": "x|y\n1|2\n3|4\n"})["delimiter"] == "|"
    # a single column gives the sniffer nothing to go on: fall back to a comma
    single = run({"csv": "x\n1\n2\n"})
    assert single["delimiter"] == "," and single["column_count"] == 1


def test_quoted_fields_with_delimiters_inside():
    out = run({"csv": 'name,note\n"Smith, J","said ""hi"""\nLee,ok\n', "delimiter": ","})
    assert out["row_count"] == 2
    assert col(out, "name")["top_values"][0]["value"] in {"Smith, J", "Lee"}
    assert col(out, "note")["distinct"] == 2


def test_ragged_rows_are_padded_and_counted():
    out = run({"csv": "a,b,c\n1,2,3\n4,5\n6,7,8,9\n"})
    assert out["ragged_rows"] == 2
    assert col(out, "c")["missing"] == 1
    assert col(out, "c")["max"] == 8


def test_header_names_are_made_unique():
    out = run({"csv": "x,,x\n1,2,3\n"})
    assert [c["name"] for c in out["columns"]] == ["x", "column_2", "x_2"]


def test_float_detection_edge_cases():
    out = run({"csv": "f,g,h,i\n1e3,inf,1_000,-.5\n-2.5,1,2,+3\n"})
    f = col(out, "f")
    assert f["type"] == "float" and f["min"] == -2.5 and f["max"] == 1000.0
    assert col(out, "g")["type"] == "string"  # infinities are not numbers here
    assert col(out, "h")["type"] == "string"  # python-style underscores are not numbers
    assert col(out, "i")["type"] == "float" and col(out, "i")["mean"] == 1.25


def test_date_formats_and_datetimes():
    out = run({"csv": "d,t,mixed\n2024/01/31,2024-01-05T10:30:00,2024-01-05T10:00:00+00:00\n05.02.2024,2024-01-05T08:00:00,2024-01-06\n"})
    d = col(out, "d")
    assert d["type"] == "date" and d["min"] == "2024-01-31" and d["max"] == "2024-02-05"
    t = col(out, "t")
    assert t["min"] == "2024-01-05T08:00:00" and t["max"] == "2024-01-05T10:30:00"
    mixed = col(out, "mixed")  # aware and naive datetimes cannot be compared
    assert mixed["type"] == "date" and "min" not in mixed


def test_numbers_like_dates_are_not_dates():
    out = run({"csv": "n\n2024\n1999\n"})
    assert col(out, "n")["type"] == "int"
    words = run({"csv": "w\nhello\n2024-01-05\n"})
    assert col(words, "w")["type"] == "string"


def test_header_only():
    out = run({"csv": "a,b\n"})
    assert out["row_count"] == 0
    assert [c["type"] for c in out["columns"]] == ["empty", "empty"]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"csv": ""}, "no header"),
        ({"csv": "\n\n"}, "no header"),
        ({"csv": 5}, "must be a string"),
        ({}, "must be a string"),
        ({"csv": "a,b\n", "delimiter": ";;"}, "single character"),
        ({"csv": "a,b\n", "delimiter": '"'}, "quote or newline"),
        ({"csv": 'a,b\n"1,2\n', "delimiter": ","}, "could not parse"),
    ],
)
def test_errors(params, message):
    with pytest.raises(ValueError, match=message):
        run(params)
