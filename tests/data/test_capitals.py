from nevermind.data.capitals import countries
from nevermind.scoring.normalize import normalize


def test_real_capitals_and_other_cities():
    by_name = {c.name: c for c in countries()}
    assert by_name["France"].capital == "Paris"
    assert "Lyon" in by_name["France"].other_cities
    assert by_name["Japan"].capital == "Tokyo" and "Osaka" in by_name["Japan"].other_cities
    assert countries()[0].name == "China"  # most populous first


def test_no_capital_hides_in_its_country_or_its_fakes():
    names = {c.name for c in countries()}
    assert "Mexico" not in names and "Singapore" not in names
    for country in countries():
        capital = normalize(country.capital)
        assert all(capital not in normalize(city) for city in country.other_cities)
