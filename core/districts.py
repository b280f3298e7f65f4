"""The 25 autonomous districts (자치구) of Seoul and their administrative codes."""

from dataclasses import dataclass


@dataclass(frozen=True)
class District:
    code: str
    name_ko: str
    name_en: str


_DISTRICTS = (
    District("11110", "종로구", "Jongno-gu"),
    District("11140", "중구", "Jung-gu"),
    District("11170", "용산구", "Yongsan-gu"),
    District("11200", "성동구", "Seongdong-gu"),
    District("11215", "광진구", "Gwangjin-gu"),
    District("11230", "동대문구", "Dongdaemun-gu"),
    District("11260", "중랑구", "Jungnang-gu"),
    District("11290", "성북구", "Seongbuk-gu"),
    District("11305", "강북구", "Gangbuk-gu"),
    District("11320", "도봉구", "Dobong-gu"),
    District("11350", "노원구", "Nowon-gu"),
    District("11380", "은평구", "Eunpyeong-gu"),
    District("11410", "서대문구", "Seodaemun-gu"),
    District("11440", "마포구", "Mapo-gu"),
    District("11470", "양천구", "Yangcheon-gu"),
    District("11500", "강서구", "Gangseo-gu"),
    District("11530", "구로구", "Guro-gu"),
    District("11545", "금천구", "Geumcheon-gu"),
    District("11560", "영등포구", "Yeongdeungpo-gu"),
    District("11590", "동작구", "Dongjak-gu"),
    District("11620", "관악구", "Gwanak-gu"),
    District("11650", "서초구", "Seocho-gu"),
    District("11680", "강남구", "Gangnam-gu"),
    District("11710", "송파구", "Songpa-gu"),
    District("11740", "강동구", "Gangdong-gu"),
)

SEOUL_DISTRICTS: dict[str, District] = {d.code: d for d in _DISTRICTS}
DISTRICT_CHOICES: list[tuple[str, str]] = [(d.code, d.name_ko) for d in _DISTRICTS]


def district_name(code: str) -> str:
    """Return the Korean name of a Seoul district; ValueError for an unknown code."""
    try:
        return SEOUL_DISTRICTS[code].name_ko
    except KeyError:
        raise ValueError(f"Unknown Seoul district code: {code!r}") from None
