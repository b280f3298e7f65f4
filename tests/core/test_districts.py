import dataclasses

import pytest

from core.districts import DISTRICT_CHOICES, SEOUL_DISTRICTS, District, district_name


def test_all_25_districts_have_unique_5_digit_codes():
    assert len(SEOUL_DISTRICTS) == 25
    assert len(DISTRICT_CHOICES) == 25
    assert all(code.startswith("11") and len(code) == 5 for code in SEOUL_DISTRICTS)
    assert len({d.name_ko for d in SEOUL_DISTRICTS.values()}) == 25


@pytest.mark.parametrize(
    ("code", "name_ko", "name_en"),
    [
        ("11110", "종로구", "Jongno-gu"),
        ("11440", "마포구", "Mapo-gu"),
        ("11680", "강남구", "Gangnam-gu"),
        ("11740", "강동구", "Gangdong-gu"),
    ],
)
def test_district_lookup(code, name_ko, name_en):
    assert district_name(code) == name_ko
    assert SEOUL_DISTRICTS[code] == District(code, name_ko, name_en)
    assert (code, name_ko) in DISTRICT_CHOICES


def test_district_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SEOUL_DISTRICTS["11440"].name_ko = "x"


def test_unknown_district_raises():
    with pytest.raises(ValueError, match="26110"):
        district_name("26110")  # Busan Jung-gu
