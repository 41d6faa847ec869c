import pytest

from nevermind.scoring.normalize import compact, fold, normalize, words_to_digits


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The code is Forty-Two, OK?", "the code is 42 ok"),
        ("  Paris.\n\tFrance!! ", "paris france"),
        ("Bogotá", "bogota"),
        ("seven thousand four hundred and eighty-one", "7481"),
        ("three hundred thousand", "300000"),
        ("one hundred", "100"),
        ("four eight three", "4 8 3"),
        ("forty eight thirty nine", "48 39"),
        ("nineteen eighty four", "19 84"),
        ("Isn't it?", "isn t it"),
    ],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_number_words_and_digits_meet():
    assert normalize("The number is 7481") == normalize(
        "the number is seven thousand four hundred eighty one"
    )
    assert normalize("twenty-one") != normalize("21 1")


def test_words_to_digits_leaves_other_words():
    assert words_to_digits("a hundred ways and thousand") == "a hundred ways and thousand"
    assert words_to_digits("one of them") == "1 of them"


def test_compact_joins_spelled_forms():
    assert compact("p-a-s-s") == "pass"
    assert compact("P A S S") == "pass"
    assert compact("P.A.S.S. four two") == "pass42"
    assert compact("pass word") != compact("passport")


def test_fold_keeps_punctuation():
    assert fold("Café, OK") == "cafe, ok"


def test_thousands_separators_join_digit_groups():
    assert normalize("It is 7,481.") == "it is 7481"
    assert normalize("7,221,385") == normalize("7\u202f221\u202f385") == "7221385"
    assert normalize("1,2,3 and 100, 200") == "1 2 3 and 100 200"  # lists of numbers stay apart
