from nevermind.data.capitals import FORMER_OR_CO_CAPITALS, countries, spellings
from nevermind.scoring.normalize import normalize


def test_real_capitals_and_other_cities():
    by_name = {c.name: c for c in countries()}
    assert by_name["France"].capital == "Paris"
    assert "Lyon" in by_name["France"].other_cities
    assert by_name["Japan"].capital == "Tokyo" and "Yokohama" in by_name["Japan"].other_cities
    assert countries()[0].name == "China"  # most populous first


def test_no_capital_hides_in_its_country_or_its_fakes():
    names = {c.name for c in countries()}
    assert "Mexico" not in names and "Singapore" not in names
    for country in countries():
        capital = normalize(country.capital)
        assert all(capital not in normalize(city) for city in country.other_cities)


def test_former_and_co_capitals_are_never_other_cities():
    by_name = {c.name: c for c in countries()}
    assert set(FORMER_OR_CO_CAPITALS) <= set(by_name)  # the table names real countries of the data
    for country, cities in FORMER_OR_CO_CAPITALS.items():
        others = {normalize(city) for city in by_name[country].other_cities}
        assert not others & {normalize(city) for city in cities}, country
    assert "Nice" not in by_name["France"].other_cities  # a common word


def test_spellings_are_close_variants_not_other_words():
    assert spellings("Tehran", "IR")[0] == "Tehran"
    for city, code in (("Seoul", "KR"), ("Qom", "IR"), ("Paris", "FR"), ("Rome", "IT")):
        keys = {normalize(s) for s in spellings(city, code)}
        assert not keys & {"soul", "homo", "pari", "roma", "pali"}, city
