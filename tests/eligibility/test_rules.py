"""The eligibility rules and duplicate checks, as pure functions: no database."""

import json
from datetime import date

import pytest

from eligibility import rules
from eligibility.rules import (
    CourseFact,
    NaeilbaeumFact,
    NationalVoucherFact,
    ScreeningInput,
    SocialSecurityFact,
    YouthAllowanceFact,
)

APPLIED = date(2026, 3, 10)
MAPO, BUSAN = "11440", "26110"


def ss(status="basic_livelihood", district=MAPO, valid_from=date(2025, 1, 1), valid_to=None):
    return SocialSecurityFact(status, district, valid_from, valid_to)


def course(**kw):
    fields = {
        "course_id": "AIG20260001",
        "name": "빅데이터 분석 실무",
        "institution": "서울직업전문학교",
        "starts_on": date(2026, 4, 1),
        "ends_on": date(2026, 7, 31),
        "vocational": True,
    }
    return CourseFact(**{**fields, **kw})


def scholarship(**kw) -> ScreeningInput:
    fields = {
        "program_code": "SCHOLARSHIP",
        "income_category": "basic_livelihood",
        "applied_on": APPLIED,
        "period_starts_on": date(2026, 1, 1),
        "period_ends_on": date(2026, 12, 31),
        "round_year": 2026,
        "birth_date": date(1990, 5, 1),
        "district": MAPO,
        "course_id": "AIG20260001",
        "training_starts_on": date(2026, 4, 1),
        "training_ends_on": date(2026, 7, 31),
        "has_enrollment_certificate": True,
        "social_security": (ss(),),
        "course": course(),
    }
    return ScreeningInput(**{**fields, **kw})


def voucher(**kw) -> ScreeningInput:
    fields = {
        "program_code": "VOUCHER",
        "income_category": "none",
        "course_id": "",
        "training_starts_on": None,
        "training_ends_on": None,
        "has_enrollment_certificate": False,
        "social_security": (),
        "course": None,
    }
    return scholarship(**{**fields, **kw})


def codes(inp, ruleset="scholarship-2026.1"):
    return {r.rule: (r.outcome, r.code) for r in rules.evaluate(inp, ruleset_version=ruleset).rules}


def test_a_complete_scholarship_application_is_eligible():
    evaluation = rules.evaluate(scholarship(), ruleset_version="scholarship-2026.1")
    assert evaluation.outcome == "eligible"
    assert evaluation.ruleset_version == "scholarship-2026.1"
    assert [r.outcome for r in evaluation.rules] == ["pass"] * 4
    assert all(r.message and r.message_ko for r in evaluation.rules)


# Seoul residence (scholarship: per the social-security registry).


def test_scholarship_residence_passes_on_a_seoul_registry_district():
    result = rules.seoul_resident_registry(scholarship())
    assert (result.outcome, result.code) == ("pass", "seoul_resident")
    assert result.evidence["district"] == MAPO


def test_scholarship_residence_fails_on_a_registry_district_outside_seoul():
    result = rules.seoul_resident_registry(scholarship(social_security=(ss(district=BUSAN),)))
    assert (result.outcome, result.code) == ("fail", "not_seoul_resident")


def test_scholarship_residence_fails_without_a_registry_record_even_with_a_seoul_profile():
    result = rules.seoul_resident_registry(scholarship(social_security=()))
    assert (result.outcome, result.code) == ("fail", "not_in_social_security_registry")


# Income status.


def test_income_status_in_force_and_matching_passes():
    result = rules.income_status(scholarship())
    assert (result.outcome, result.code) == ("pass", "income_status_confirmed")


@pytest.mark.parametrize(
    ("valid_from", "valid_to", "outcome"),
    [
        (APPLIED, None, "pass"),  # starts on the application date
        (date(2025, 1, 1), APPLIED, "pass"),  # ends on the application date
        (date(2025, 1, 1), date(2026, 3, 9), "fail"),  # ended the day before
        (date(2026, 3, 11), None, "fail"),  # starts the day after
    ],
)
def test_income_status_must_be_valid_on_the_application_date(valid_from, valid_to, outcome):
    inp = scholarship(social_security=(ss(valid_from=valid_from, valid_to=valid_to),))
    result = rules.income_status(inp)
    assert result.outcome == outcome
    if outcome == "fail":
        assert result.code == "status_not_valid_on_date"


def test_income_status_fails_when_the_person_has_no_status():
    result = rules.income_status(scholarship(social_security=()))
    assert (result.outcome, result.code) == ("fail", "no_income_status")


def test_claimed_basic_livelihood_but_registry_near_poor_fails():
    result = rules.income_status(scholarship(social_security=(ss(status="near_poor"),)))
    assert (result.outcome, result.code) == ("fail", "income_category_mismatch")


def test_claimed_near_poor_but_registry_basic_livelihood_goes_to_review():
    result = rules.income_status(scholarship(income_category="near_poor"))
    assert (result.outcome, result.code) == ("review", "income_category_understated")


def test_claimed_no_category_fails_for_the_scholarship():
    result = rules.income_status(scholarship(income_category="none"))
    assert (result.outcome, result.code) == ("fail", "income_category_not_eligible")


# Approved course.


def test_catalogue_vocational_course_in_the_period_passes():
    result = rules.approved_course(scholarship())
    assert (result.outcome, result.code) == ("pass", "course_approved")
    assert result.evidence["course_id"] == "AIG20260001"


def test_course_not_in_the_catalogue_fails():
    result = rules.approved_course(scholarship(course=None))
    assert (result.outcome, result.code) == ("fail", "course_not_in_catalogue")


def test_course_without_an_id_goes_to_review():
    result = rules.approved_course(scholarship(course_id="", course=None))
    assert (result.outcome, result.code) == ("review", "course_id_missing")


def test_non_vocational_course_fails():
    result = rules.approved_course(scholarship(course=course(vocational=False)))
    assert (result.outcome, result.code) == ("fail", "course_not_vocational")


@pytest.mark.parametrize(
    ("starts_on", "ends_on", "outcome"),
    [
        (date(2025, 9, 1), date(2026, 1, 1), "pass"),  # ends on the period's first day
        (date(2026, 12, 31), date(2027, 3, 1), "pass"),  # starts on the period's last day
        (date(2025, 9, 1), date(2025, 12, 31), "fail"),  # ends the day before
        (date(2027, 1, 1), date(2027, 3, 1), "fail"),  # starts the day after
    ],
)
def test_course_dates_must_overlap_the_round_period(starts_on, ends_on, outcome):
    result = rules.approved_course(scholarship(course=course(starts_on=starts_on, ends_on=ends_on)))
    assert result.outcome == outcome
    if outcome == "fail":
        assert result.code == "course_outside_period"


# Enrollment certificate.


def test_enrollment_certificate_uploaded_passes():
    result = rules.enrollment_certificate(scholarship())
    assert (result.outcome, result.code) == ("pass", "enrollment_certificate_uploaded")


def test_missing_enrollment_certificate_goes_to_review():
    result = rules.enrollment_certificate(scholarship(has_enrollment_certificate=False))
    assert (result.outcome, result.code) == ("review", "enrollment_certificate_missing")
    evaluation = rules.evaluate(
        scholarship(has_enrollment_certificate=False), ruleset_version="scholarship-2026.1"
    )
    assert evaluation.outcome == "needs_review"


# Voucher.


@pytest.mark.parametrize(
    ("birth_date", "outcome", "code"),
    [
        (date(2007, 3, 10), "pass", "adult"),  # 19th birthday on the application date
        (date(2007, 3, 11), "fail", "under_19"),  # one day short
        (None, "review", "birth_date_unknown"),
    ],
)
def test_voucher_applicant_must_be_19_on_the_application_date(birth_date, outcome, code):
    result = rules.adult(voucher(birth_date=birth_date))
    assert (result.outcome, result.code) == (outcome, code)


def test_voucher_residence_uses_the_profile_when_the_registry_is_silent():
    result = rules.seoul_resident_profile(voucher())
    assert (result.outcome, result.code) == ("pass", "seoul_resident")
    assert result.evidence["source"] == "profile"
    outside = rules.seoul_resident_profile(voucher(district=BUSAN))
    assert (outside.outcome, outside.code) == ("fail", "not_seoul_resident")


def test_voucher_residence_fails_when_the_registry_places_the_person_outside_seoul():
    result = rules.seoul_resident_profile(voucher(social_security=(ss(district=BUSAN),)))
    assert (result.outcome, result.code) == ("fail", "not_seoul_resident")
    assert result.evidence["source"] == "social_security"


def test_voucher_priority_tier_comes_from_the_registry():
    low_income = codes(voucher(social_security=(ss(status="near_poor"),)), "voucher-2026.1")
    assert low_income["priority_tier"] == ("pass", "priority_tier")
    result = rules.evaluate(
        voucher(social_security=(ss(status="near_poor"),)), ruleset_version="voucher-2026.1"
    )
    tier = next(r for r in result.rules if r.rule == "priority_tier")
    assert tier.evidence["tier"] == "near_poor"
    assert result.outcome == "eligible"


def test_voucher_general_applicant_is_eligible_with_no_priority():
    result = rules.evaluate(voucher(), ruleset_version="voucher-2026.1")
    assert result.outcome == "eligible"
    assert next(r for r in result.rules if r.rule == "priority_tier").evidence["tier"] == "none"


def test_voucher_claimed_priority_not_in_the_registry_goes_to_review():
    outcome, code = codes(voucher(income_category="basic_livelihood"), "voucher-2026.1")[
        "priority_tier"
    ]
    assert (outcome, code) == ("review", "priority_not_confirmed")


# Rulesets.


def test_unknown_ruleset_version_falls_back_to_the_programs_default():
    assert rules.evaluate(scholarship(), ruleset_version="nope").ruleset_version == (
        "scholarship-2026.1"
    )
    # A version written for the other program is not applied either.
    assert rules.evaluate(voucher(), ruleset_version="scholarship-2026.1").ruleset_version == (
        "voucher-2026.1"
    )


def test_overall_outcome_fail_beats_review_beats_pass():
    passed = rules.RuleResult("a", "pass", "a")
    review = passed._replace(outcome="review")
    fail = passed._replace(outcome="fail")
    assert rules.overall_outcome([passed, passed]) == "eligible"
    assert rules.overall_outcome([passed, review]) == "needs_review"
    assert rules.overall_outcome([review, fail, passed]) == "ineligible"


def test_a_result_is_stored_as_code_and_evidence_and_reads_in_both_languages():
    result = rules.RuleResult("adult", "pass", "adult")
    # A run stores plain JSON, even for a result built without evidence.
    assert json.loads(json.dumps(result.as_record())) == {
        "rule": "adult",
        "outcome": "pass",
        "code": "adult",
        "evidence": {},
    }
    assert (result.message, result.message_ko) == rules.MESSAGES["adult"]
    assert rules.rendered_rule(result.as_record())["message_ko"] == "만 19세 이상입니다."


# Duplicate checks: each policy against each registry.

TRAINING = (date(2026, 4, 1), date(2026, 7, 31))

REGISTRY_FACTS = {
    "naeilbaeum": {
        "naeilbaeum": (NaeilbaeumFact(date(2025, 1, 1), date(2029, 12, 31), "OTHER", *TRAINING),)
    },
    "youth_allowance": {
        "youth_allowance": (YouthAllowanceFact(date(2026, 5, 1), date(2026, 10, 31)),)
    },
    "national_voucher": {"national_voucher": (NationalVoucherFact(2026),)},
}


@pytest.mark.parametrize("registry", sorted(REGISTRY_FACTS))
@pytest.mark.parametrize(
    ("action", "outcome"), [("block", "ineligible"), ("review", "needs_review"), ("allow", None)]
)
def test_duplicate_policy_per_registry(registry, action, outcome):
    inp = scholarship(duplicate_policy={registry: action}, **REGISTRY_FACTS[registry])
    evaluation = rules.evaluate(inp, ruleset_version="scholarship-2026.1")
    [match] = evaluation.duplicates
    assert (match.registry, match.action) == (registry, action)
    dup_rules = [r for r in evaluation.rules if r.rule == f"duplicate_{registry}"]
    if outcome is None:
        assert dup_rules == []
        assert evaluation.outcome == "eligible"
    else:
        assert [r.code for r in dup_rules] == [f"duplicate_{registry}"]
        assert evaluation.outcome == outcome


@pytest.mark.parametrize("action", ["block", "review", "allow"])
def test_a_stored_match_reads_back_with_its_evidence_stored_once(action):
    from eligibility.models import ScreeningRun

    inp = scholarship(
        duplicate_policy={"youth_allowance": action}, **REGISTRY_FACTS["youth_allowance"]
    )
    evaluation = rules.evaluate(inp, ruleset_version="scholarship-2026.1")
    results, matches = rules.stored_records(evaluation)
    stored = json.loads(json.dumps({"rules": results, "duplicates": matches}))

    expected = {
        "matches": [{"paid_from": "2026-05-01", "paid_to": "2026-10-31"}],
        "policy": action,
    }
    # The evidence is stored once: with the rule result, or with the match a policy allows.
    assert str(stored).count("2026-10-31") == 1
    [match] = ScreeningRun(**stored).duplicate_matches()
    assert (match["registry"], match["action"], match["evidence"]) == (
        "youth_allowance",
        action,
        expected,
    )


@pytest.mark.parametrize(
    ("registry", "outcome"),
    [("naeilbaeum", "review"), ("youth_allowance", "review"), ("national_voucher", "fail")],
)
def test_default_duplicate_policy_when_the_round_configures_none(registry, outcome):
    results, matches = rules.duplicate_checks(scholarship(**REGISTRY_FACTS[registry]))
    assert [r.outcome for r in results] == [outcome]
    assert matches[0].action == {"review": "review", "fail": "block"}[outcome]


def test_malformed_policy_value_uses_the_default():
    assert rules.policy_for({"national_voucher": "maybe"}, "national_voucher") == "block"


def nb(training_from, training_to, course_id="OTHER"):
    return NaeilbaeumFact(
        date(2025, 1, 1), date(2029, 12, 31), course_id, training_from, training_to
    )


@pytest.mark.parametrize(
    ("training_from", "training_to", "found"),
    [
        (date(2026, 1, 1), date(2026, 4, 1), True),  # ends on the training's first day
        (date(2026, 7, 31), date(2026, 9, 30), True),  # starts on the training's last day
        (date(2026, 1, 1), date(2026, 3, 31), False),  # ends the day before
        (date(2026, 8, 1), date(2026, 9, 30), False),  # starts the day after
    ],
)
def test_naeilbaeum_training_overlap_edge_days(training_from, training_to, found):
    inp = scholarship(naeilbaeum=(nb(training_from, training_to),))
    assert bool(rules.naeilbaeum_matches(inp)) is found


def test_naeilbaeum_same_course_matches_whatever_the_dates():
    inp = scholarship(naeilbaeum=(nb(None, None, course_id="AIG20260001"),))
    [match] = rules.naeilbaeum_matches(inp)
    assert match["same_course"] is True
    assert match["same_period"] is False


@pytest.mark.parametrize(
    ("paid_from", "paid_to", "found"),
    [
        (date(2026, 1, 1), date(2026, 4, 30), True),  # April paid, training starts 1 April
        (date(2026, 7, 1), date(2026, 12, 31), True),  # July paid, training ends 31 July
        (date(2026, 1, 1), date(2026, 3, 31), False),  # paid up to March
        (date(2026, 8, 1), date(2026, 12, 31), False),  # paid from August
    ],
)
def test_youth_allowance_month_overlap_edge_days(paid_from, paid_to, found):
    inp = scholarship(youth_allowance=(YouthAllowanceFact(paid_from, paid_to),))
    assert bool(rules.youth_allowance_matches(inp)) is found


@pytest.mark.parametrize(("year", "found"), [(2026, True), (2025, False), (2027, False)])
def test_national_voucher_matches_only_the_rounds_year(year, found):
    inp = scholarship(national_voucher=(NationalVoucherFact(year),))
    assert bool(rules.national_voucher_matches(inp)) is found


def test_voucher_without_training_is_matched_on_the_rounds_period():
    inp = voucher(youth_allowance=(YouthAllowanceFact(date(2026, 12, 1), date(2026, 12, 31)),))
    assert rules.youth_allowance_matches(inp)


def test_same_person_in_another_live_application_of_the_year_goes_to_review():
    results, matches = rules.duplicate_checks(scholarship(other_live_applications=(42,)))
    assert [(r.outcome, r.code) for r in results] == [("review", "internal_application")]
    assert matches[0].evidence == {"applications": [42]}


def test_bank_account_shared_with_other_applicants_goes_to_review():
    results, matches = rules.duplicate_checks(scholarship(shared_account_applicants=(7, 3)))
    assert [(r.outcome, r.code) for r in results] == [("review", "shared_account")]
    assert matches[0].evidence == {"applicants": [3, 7]}
