"""Eligibility rules and duplicate-benefit checks as pure functions over plain data.

Nothing here touches the database: eligibility.screening gathers the facts into a
`ScreeningInput`, and these functions say pass, fail or review, with the evidence used.
"""

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import date
from functools import lru_cache, partial
from types import MappingProxyType
from typing import NamedTuple

from core.districts import SEOUL_DISTRICTS

PASS, FAIL, REVIEW = "pass", "fail", "review"
ELIGIBLE, INELIGIBLE, NEEDS_REVIEW = "eligible", "ineligible", "needs_review"
BLOCK, ALLOW = "block", "allow"
# A caseworker's judgement of a matched record: the first two dismiss it for good (until the
# record itself changes); a confirmed duplicate fails the application.
NOT_THE_SAME_PERSON, NO_OVERLAP_IN_FACT = "not_the_same_person", "no_overlap_in_fact"
CONFIRMED_DUPLICATE = "confirmed_duplicate"
DISMISSING = (NOT_THE_SAME_PERSON, NO_OVERLAP_IN_FACT)
BASIC_LIVELIHOOD, NEAR_POOR, NO_CATEGORY = "basic_livelihood", "near_poor", "none"

# The external benefits the plan says the scholarship must not duplicate.
NAEILBAEUM, YOUTH_ALLOWANCE, NATIONAL_VOUCHER = "naeilbaeum", "youth_allowance", "national_voucher"
# Internal duplicates: always a review, never configurable.
INTERNAL_APPLICATION, SHARED_ACCOUNT = "internal_application", "shared_account"
DEFAULT_DUPLICATE_POLICY = {NAEILBAEUM: REVIEW, YOUTH_ALLOWANCE: REVIEW, NATIONAL_VOUCHER: BLOCK}

# Civil Act (민법) art. 4: a person comes of age at 19.
ADULT_AGE = 19


# Inputs, facts and results are named tuples: immutable and built in C, where a frozen
# dataclass sets each field through object.__setattr__, which shows at 100,000 applications.


class SocialSecurityFact(NamedTuple):
    status: str
    district: str
    valid_from: date
    valid_to: date | None


class NaeilbaeumFact(NamedTuple):
    card_valid_from: date
    card_valid_to: date
    course_id: str
    training_from: date | None
    training_to: date | None


class YouthAllowanceFact(NamedTuple):
    paid_from: date
    paid_to: date


class NationalVoucherFact(NamedTuple):
    year: int


class CourseFact(NamedTuple):
    course_id: str
    name: str
    institution: str
    starts_on: date
    ends_on: date
    vocational: bool


class ScreeningInput(NamedTuple):
    """Everything the rules may look at for one application, as plain values."""

    program_code: str
    income_category: str
    applied_on: date
    period_starts_on: date
    period_ends_on: date
    round_year: int
    birth_date: date | None
    district: str
    course_id: str = ""
    training_starts_on: date | None = None
    training_ends_on: date | None = None
    has_enrollment_certificate: bool = False
    social_security: tuple[SocialSecurityFact, ...] = ()
    naeilbaeum: tuple[NaeilbaeumFact, ...] = ()
    youth_allowance: tuple[YouthAllowanceFact, ...] = ()
    national_voucher: tuple[NationalVoucherFact, ...] = ()
    course: CourseFact | None = None
    # Ids of this person's other live applications in other rounds of the same year.
    other_live_applications: tuple[int, ...] = ()
    # Ids of other applicants whose bank account has the same fingerprint.
    shared_account_applicants: tuple[int, ...] = ()
    duplicate_policy: Mapping[str, str] = MappingProxyType({})
    # Caseworkers' judgements of matched records: {match id: resolution} (see match_id).
    resolutions: Mapping[str, str] = MappingProxyType({})


def _plain(evidence: Mapping) -> dict:
    # The rules build dicts; the default (a read-only mapping) is not JSON as such.
    return evidence if type(evidence) is dict else dict(evidence)


class RuleResult(NamedTuple):
    rule: str
    outcome: str
    code: str
    evidence: Mapping = MappingProxyType({})

    # The messages follow from the code: a run stores the code and the evidence, and the
    # words are rendered when it is read (see `rendered_rule`).
    @property
    def message(self) -> str:
        return MESSAGES[self.code][0]

    @property
    def message_ko(self) -> str:
        return MESSAGES[self.code][1]

    def as_record(self) -> dict:
        """The result as a screening run stores it."""
        return {
            "rule": self.rule,
            "outcome": self.outcome,
            "code": self.code,
            "evidence": _plain(self.evidence),
        }


class DuplicateMatch(NamedTuple):
    registry: str
    action: str
    evidence: Mapping = MappingProxyType({})

    @property
    def detail(self) -> str:
        return MESSAGES[duplicate_code(self.registry)][0]

    def as_record(self, *, with_evidence: bool = True) -> dict:
        """The match as a screening run stores it; see `stored_records` for the evidence."""
        if not with_evidence:
            return {"registry": self.registry, "action": self.action}
        return {"registry": self.registry, "action": self.action, "evidence": _plain(self.evidence)}


class Evaluation(NamedTuple):
    ruleset_version: str
    outcome: str
    rules: tuple[RuleResult, ...]
    duplicates: tuple[DuplicateMatch, ...]


# Evidence repeats a few thousand distinct days: each is formatted once per process
# (date.isoformat takes several times a cache hit, and a round asks a million times).
@lru_cache(maxsize=65_536)
def _isoformat(day: date) -> str:
    return day.isoformat()


def _iso(value: date | None) -> str | None:
    return None if value is None else _isoformat(value)


def overlaps(a_from: date, a_to: date, b_from: date, b_to: date) -> bool:
    """Two closed date ranges overlap; sharing one edge day counts."""
    return a_from <= b_to and b_from <= a_to


def age_on(birth_date: date, day: date) -> int:
    """Return the full years of age on a day."""
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def valid_statuses(inp: ScreeningInput) -> list[SocialSecurityFact]:
    """Return the social-security records in force on the application date."""
    return [
        r
        for r in inp.social_security
        if r.valid_from <= inp.applied_on and (r.valid_to is None or inp.applied_on <= r.valid_to)
    ]


def _registry_record(inp: ScreeningInput) -> SocialSecurityFact | None:
    # The record in force wins; otherwise the latest one still says where the person lived.
    candidates = valid_statuses(inp) or list(inp.social_security)
    return max(candidates, key=lambda r: r.valid_from, default=None)


def _ss_evidence(record: SocialSecurityFact) -> dict:
    return {
        "status": record.status,
        "district": record.district,
        "valid_from": _iso(record.valid_from),
        "valid_to": _iso(record.valid_to),
    }


def _training_period(inp: ScreeningInput) -> tuple[date, date]:
    # A voucher application may carry no training: the round's period stands in for it.
    if inp.training_starts_on and inp.training_ends_on:
        return inp.training_starts_on, inp.training_ends_on
    return inp.period_starts_on, inp.period_ends_on


# Stable code → (English, Korean) message; the code is what clients and reports key on.
MESSAGES = {
    "not_in_social_security_registry": (
        "No social-security record was found for this person.",
        "사회보장 정보에서 신청인의 기록을 찾을 수 없습니다.",
    ),
    "not_seoul_resident": ("The person does not live in Seoul.", "주소지가 서울시가 아닙니다."),
    "seoul_resident": ("Seoul resident.", "서울시 거주자입니다."),
    "income_category_not_eligible": (
        "The scholarship is for basic-livelihood recipients and the near-poor only.",
        "장학금은 기초생활수급자와 차상위계층만 신청할 수 있습니다.",
    ),
    "no_income_status": (
        "No basic-livelihood or near-poor status was found for this person.",
        "기초생활수급 또는 차상위 자격이 확인되지 않습니다.",
    ),
    "status_not_valid_on_date": (
        "No basic-livelihood or near-poor status is in force on the application date.",
        "신청일 기준 유효한 기초생활수급 또는 차상위 자격이 없습니다.",
    ),
    "income_status_confirmed": (
        "The claimed income category is confirmed by the registry.",
        "신청한 소득 구분이 사회보장 정보로 확인되었습니다.",
    ),
    "income_category_understated": (
        "The registry shows basic livelihood although near-poor was claimed.",
        "차상위로 신청했으나 사회보장 정보상 기초생활수급자입니다.",
    ),
    "income_category_mismatch": (
        "The registry status does not match the claimed income category.",
        "신청한 소득 구분이 사회보장 정보와 일치하지 않습니다.",
    ),
    "course_id_missing": (
        "No course id was given, so the course cannot be checked against the catalogue.",
        "과정 ID가 없어 승인 과정 목록과 대조할 수 없습니다.",
    ),
    "course_not_in_catalogue": (
        "The course is not in the approved training-course catalogue.",
        "승인된 직업훈련 과정 목록에 없는 과정입니다.",
    ),
    "course_not_vocational": (
        "The course is not a vocational-training course.",
        "직업훈련 과정이 아닙니다.",
    ),
    "course_outside_period": (
        "The course does not run during the round's benefit period.",
        "과정 기간이 지원 기간과 겹치지 않습니다.",
    ),
    "course_approved": (
        "An approved vocational course running during the benefit period.",
        "지원 기간 중 운영되는 승인 직업훈련 과정입니다.",
    ),
    "enrollment_certificate_missing": (
        "The enrollment certificate has not been uploaded.",
        "수강(재학) 증명서가 제출되지 않았습니다.",
    ),
    "enrollment_certificate_uploaded": (
        "The enrollment certificate is uploaded.",
        "수강(재학) 증명서가 제출되었습니다.",
    ),
    "birth_date_unknown": ("The birth date is unknown.", "생년월일을 확인할 수 없습니다."),
    "under_19": (
        "The voucher is for adults aged 19 or older.",
        "바우처는 만 19세 이상 성인만 신청할 수 있습니다.",
    ),
    "adult": ("Aged 19 or older.", "만 19세 이상입니다."),
    "priority_not_confirmed": (
        "The claimed low-income priority is not confirmed by the registry.",
        "신청한 저소득 우선 구분이 사회보장 정보로 확인되지 않습니다.",
    ),
    "priority_tier": ("Priority tier checked.", "우선 선정 구분을 확인했습니다."),
    "duplicate_naeilbaeum": (
        "Holds a Naeil-baeum card for an overlapping training.",
        "기간 또는 과정이 겹치는 국민내일배움카드 훈련 이력이 있습니다.",
    ),
    "duplicate_youth_allowance": (
        "Received the Seoul youth allowance in overlapping months.",
        "겹치는 기간에 서울시 청년수당을 받았습니다.",
    ),
    "duplicate_national_voucher": (
        "Received the national lifelong-learning voucher in the same year.",
        "같은 해 국가 평생교육바우처를 받았습니다.",
    ),
    "internal_application": (
        "The same person has another live application in the same year.",
        "같은 해 다른 회차에 진행 중인 신청이 있습니다.",
    ),
    "shared_account": (
        "The bank account is shared with other applicants.",
        "다른 신청인과 같은 계좌를 사용합니다.",
    ),
}


def _result(rule: str, outcome: str, code: str, evidence: dict | None = None) -> RuleResult:
    return RuleResult(rule, outcome, code, {} if evidence is None else evidence)


def duplicate_code(registry: str) -> str:
    """The code of a duplicate found in a registry: the rule result and message it gives."""
    return (
        registry if registry in (INTERNAL_APPLICATION, SHARED_ACCOUNT) else f"duplicate_{registry}"
    )


def rendered_rule(stored: Mapping) -> dict:
    """A stored rule result with its messages in English and Korean.

    Runs stored before messages were rendered on read carry their own words, which stand.
    """
    message, message_ko = MESSAGES.get(stored.get("code"), ("", ""))
    return {
        "rule": stored.get("rule"),
        "outcome": stored.get("outcome"),
        "code": stored.get("code"),
        "message": stored.get("message") or message,
        "message_ko": stored.get("message_ko") or message_ko,
        "evidence": stored.get("evidence") or {},
    }


def rendered_match(stored: Mapping, rule_evidence: Mapping | None = None) -> dict:
    """A stored duplicate match with its detail (the message of its code) and its evidence.

    `rule_evidence` maps the run's rule codes to their evidence: a match that gave a rule
    result is stored without evidence of its own (see `stored_records`).
    """
    registry = stored.get("registry") or ""
    code = duplicate_code(registry)
    detail = MESSAGES.get(code, ("",))[0]
    evidence = stored.get("evidence")
    if evidence is None:
        evidence = (rule_evidence or {}).get(code)
    return {
        "registry": registry,
        "action": stored.get("action"),
        "detail": stored.get("detail") or detail,
        "evidence": evidence or {},
    }


# Scholarship rules.


def seoul_resident_registry(inp: ScreeningInput) -> RuleResult:
    """Scholarship: the social-security registry places the person in a Seoul district."""
    record = _registry_record(inp)
    if record is None:
        return _result("seoul_resident", FAIL, "not_in_social_security_registry")
    evidence = {"source": "social_security", **_ss_evidence(record)}
    if record.district not in SEOUL_DISTRICTS:
        return _result("seoul_resident", FAIL, "not_seoul_resident", evidence)
    return _result("seoul_resident", PASS, "seoul_resident", evidence)


def income_status(inp: ScreeningInput) -> RuleResult:
    """Scholarship: basic-livelihood or near-poor status in force and matching the claim."""
    rule = "income_status"
    claimed = {"claimed": inp.income_category, "applied_on": _iso(inp.applied_on)}
    if inp.income_category not in (BASIC_LIVELIHOOD, NEAR_POOR):
        return _result(rule, FAIL, "income_category_not_eligible", claimed)
    valid = valid_statuses(inp)
    if not valid:
        code = "status_not_valid_on_date" if inp.social_security else "no_income_status"
        return _result(rule, FAIL, code, claimed)
    matching = [r for r in valid if r.status == inp.income_category]
    if matching:
        return _result(
            rule, PASS, "income_status_confirmed", {**claimed, **_ss_evidence(matching[0])}
        )
    found = valid[0]
    evidence = {**claimed, **_ss_evidence(found)}
    if inp.income_category == NEAR_POOR and found.status == BASIC_LIVELIHOOD:
        # Eligible either way, but the claim ranks the person lower: a caseworker corrects it.
        return _result(rule, REVIEW, "income_category_understated", evidence)
    return _result(rule, FAIL, "income_category_mismatch", evidence)


def approved_course(inp: ScreeningInput) -> RuleResult:
    """Scholarship: a vocational course of the catalogue overlapping the round's period."""
    rule = "approved_course"
    if not inp.course_id:
        return _result(rule, REVIEW, "course_id_missing")
    course = inp.course
    if course is None or course.course_id != inp.course_id:
        return _result(rule, FAIL, "course_not_in_catalogue", {"course_id": inp.course_id})
    evidence = {
        "course_id": course.course_id,
        "name": course.name,
        "institution": course.institution,
        "starts_on": _iso(course.starts_on),
        "ends_on": _iso(course.ends_on),
        "vocational": course.vocational,
        "period": [_iso(inp.period_starts_on), _iso(inp.period_ends_on)],
    }
    if not course.vocational:
        return _result(rule, FAIL, "course_not_vocational", evidence)
    if not overlaps(course.starts_on, course.ends_on, inp.period_starts_on, inp.period_ends_on):
        return _result(rule, FAIL, "course_outside_period", evidence)
    return _result(rule, PASS, "course_approved", evidence)


def enrollment_certificate(inp: ScreeningInput) -> RuleResult:
    """Scholarship: the enrollment certificate is uploaded."""
    if not inp.has_enrollment_certificate:
        return _result("enrollment_certificate", REVIEW, "enrollment_certificate_missing")
    return _result("enrollment_certificate", PASS, "enrollment_certificate_uploaded")


# Voucher rules.


def adult(inp: ScreeningInput) -> RuleResult:
    """Voucher: 19 or older on the application date."""
    if inp.birth_date is None:
        return _result("adult", REVIEW, "birth_date_unknown")
    age = age_on(inp.birth_date, inp.applied_on)
    evidence = {"birth_date": _iso(inp.birth_date), "age": age, "on": _iso(inp.applied_on)}
    if age < ADULT_AGE:
        return _result("adult", FAIL, "under_19", evidence)
    return _result("adult", PASS, "adult", evidence)


def seoul_resident_profile(inp: ScreeningInput) -> RuleResult:
    """Voucher: Seoul resident by the registry, or by the profile when the registry is silent."""
    if inp.social_security:
        return seoul_resident_registry(inp)
    evidence = {"source": "profile", "district": inp.district}
    if inp.district in SEOUL_DISTRICTS:
        return _result("seoul_resident", PASS, "seoul_resident", evidence)
    return _result("seoul_resident", FAIL, "not_seoul_resident", evidence)


def priority_tier(inp: ScreeningInput, *, categories: tuple[str, ...]) -> RuleResult:
    """Voucher: find the priority tier (low income first) from the registry."""
    valid = {r.status: r for r in valid_statuses(inp)}
    tier = next((c for c in categories if c in valid), NO_CATEGORY)
    evidence = {"tier": tier, "claimed": inp.income_category, "categories": list(categories)}
    if tier != NO_CATEGORY:
        evidence.update(_ss_evidence(valid[tier]))
    if inp.income_category in categories and inp.income_category not in valid:
        return _result("priority_tier", REVIEW, "priority_not_confirmed", evidence)
    return _result("priority_tier", PASS, "priority_tier", evidence)


Rule = Callable[[ScreeningInput], RuleResult]

RULESETS: dict[str, list[Rule]] = {
    "scholarship-2026.1": [
        seoul_resident_registry,
        income_status,
        approved_course,
        enrollment_certificate,
    ],
    "voucher-2026.1": [
        adult,
        seoul_resident_profile,
        partial(priority_tier, categories=(BASIC_LIVELIHOOD, NEAR_POOR)),
    ],
}
RULESET_PROGRAMS = {"scholarship-2026.1": "SCHOLARSHIP", "voucher-2026.1": "VOUCHER"}
DEFAULT_RULESETS = {"SCHOLARSHIP": "scholarship-2026.1", "VOUCHER": "voucher-2026.1"}


def ruleset_for(version: str, program_code: str) -> tuple[str, list[Rule]]:
    """Return the round's ruleset, or the program's default when the version is unknown."""
    if RULESET_PROGRAMS.get(version) != program_code:
        version = DEFAULT_RULESETS[program_code]
    return version, RULESETS[version]


# Duplicate checks.


def policy_for(policy: Mapping[str, str], registry: str) -> str:
    """Return the round's action for a registry, the default when missing or malformed."""
    action = (policy or {}).get(registry)
    return action if action in (BLOCK, REVIEW, ALLOW) else DEFAULT_DUPLICATE_POLICY[registry]


def naeilbaeum_matches(inp: ScreeningInput) -> list[dict]:
    """Naeil-baeum cards whose training overlaps the application's period or course."""
    start, end = _training_period(inp)
    matches = []
    for r in inp.naeilbaeum:
        same_course = bool(inp.course_id) and r.course_id == inp.course_id
        same_period = bool(r.training_from and r.training_to) and overlaps(
            r.training_from, r.training_to, start, end
        )
        if same_course or same_period:
            matches.append(
                {
                    "course_id": r.course_id,
                    "training_from": _iso(r.training_from),
                    "training_to": _iso(r.training_to),
                    "same_course": same_course,
                    "same_period": same_period,
                }
            )
    return matches


def youth_allowance_matches(inp: ScreeningInput) -> list[dict]:
    """Youth-allowance payments in months overlapping the application's period."""
    start, end = _training_period(inp)
    return [
        {"paid_from": _iso(r.paid_from), "paid_to": _iso(r.paid_to)}
        for r in inp.youth_allowance
        if overlaps(r.paid_from, r.paid_to, start, end)
    ]


def national_voucher_matches(inp: ScreeningInput) -> list[dict]:
    """National lifelong-learning vouchers granted in the round's year."""
    return [{"year": r.year} for r in inp.national_voucher if r.year == inp.round_year]


_REGISTRY_CHECKS = (
    (NAEILBAEUM, naeilbaeum_matches),
    (YOUTH_ALLOWANCE, youth_allowance_matches),
    (NATIONAL_VOUCHER, national_voucher_matches),
)


def match_id(registry: str, record: Mapping) -> str:
    """The id of one matched record: its registry and content, the same in every snapshot
    (a snapshot's row ids are not), so a judgement holds until the record itself changes."""
    payload = json.dumps([registry, record], sort_keys=True, separators=(",", ":"), default=str)
    return f"{registry}.{hashlib.sha256(payload.encode()).hexdigest()[:20]}"


# The internal duplicates' evidence names ids: one record per other application/applicant.
_INTERNAL_RECORDS = {INTERNAL_APPLICATION: "applications", SHARED_ACCOUNT: "applicants"}


def match_records(registry: str, evidence: Mapping) -> list[dict]:
    """The records a duplicate match found, one dict each, as match_id identifies them."""
    if registry in _INTERNAL_RECORDS:
        name = _INTERNAL_RECORDS[registry]
        return [{name[:-1]: i} for i in evidence.get(name, ())]
    return list(evidence.get("matches", ()))


def _judged(registry: str, records: list, resolutions: Mapping[str, str]) -> tuple[list, bool]:
    """The records still raised after the caseworkers' judgements, and whether any of them
    was confirmed a duplicate."""
    kept, confirmed = [], False
    for record in records:
        resolution = resolutions.get(match_id(registry, record))
        if resolution in DISMISSING:
            continue
        confirmed = confirmed or resolution == CONFIRMED_DUPLICATE
        kept.append(record)
    return kept, confirmed


def duplicate_checks(inp: ScreeningInput) -> tuple[list[RuleResult], list[DuplicateMatch]]:
    """Match the person against other benefits; return rule results and every match found.

    A record a caseworker judged not a duplicate is not raised again; one confirmed as a
    duplicate fails the application unless the round allows that registry's duplicates.
    """
    results: list[RuleResult] = []
    found: list[DuplicateMatch] = []
    resolutions = inp.resolutions
    for registry, matcher in _REGISTRY_CHECKS:
        matches = matcher(inp)
        confirmed = False
        if matches and resolutions:
            matches, confirmed = _judged(registry, matches, resolutions)
        if not matches:
            continue
        action = policy_for(inp.duplicate_policy, registry)
        code = duplicate_code(registry)
        evidence = {"matches": matches, "policy": action}
        found.append(DuplicateMatch(registry, action, evidence))
        if action != ALLOW:
            outcome = FAIL if action == BLOCK or confirmed else REVIEW
            results.append(_result(code, outcome, code, evidence))
    internal = (
        (INTERNAL_APPLICATION, sorted(inp.other_live_applications)),
        (SHARED_ACCOUNT, sorted(inp.shared_account_applicants)),
    )
    for registry, ids in internal:
        confirmed = False
        if ids and resolutions:
            records, confirmed = _judged(
                registry, match_records(registry, {_INTERNAL_RECORDS[registry]: ids}), resolutions
            )
            ids = [next(iter(record.values())) for record in records]
        if not ids:
            continue
        evidence = {_INTERNAL_RECORDS[registry]: ids}
        found.append(DuplicateMatch(registry, REVIEW, evidence))
        results.append(_result(registry, FAIL if confirmed else REVIEW, registry, evidence))
    return results, found


def overall_outcome(results: list[RuleResult] | tuple[RuleResult, ...]) -> str:
    """Any fail makes the application ineligible, else any review needs a person."""
    outcomes = {r.outcome for r in results}
    if FAIL in outcomes:
        return INELIGIBLE
    if REVIEW in outcomes:
        return NEEDS_REVIEW
    return ELIGIBLE


def stored_records(evaluation: Evaluation) -> tuple[list[dict], list[dict]]:
    """The rule results and duplicate matches as a screening run stores them.

    A match under a `block` or `review` policy gave a rule result with the same evidence,
    which is stored once, with the result; a match the policy allows keeps its own.
    """
    results = [r.as_record() for r in evaluation.rules]
    matches = [d.as_record(with_evidence=d.action == ALLOW) for d in evaluation.duplicates]
    return results, matches


def evaluate(inp: ScreeningInput, *, ruleset_version: str) -> Evaluation:
    """Run the ruleset and the duplicate checks on one input."""
    version, rules = ruleset_for(ruleset_version, inp.program_code)
    results = [rule(inp) for rule in rules]
    duplicate_results, duplicates = duplicate_checks(inp)
    results.extend(duplicate_results)
    return Evaluation(version, overall_outcome(results), tuple(results), tuple(duplicates))
