import numpy as np
import pytest
from stdnum.cn import ric, uscc

from sourcegen.codes import issue_usccs, make_ric, make_uscc, org_code_check, uscc_check, wrong_uscc_check
from sourcegen.model import resident_ids


def test_uscc_check_matches_the_standard_example():
    # GB 32100-2015's worked example 91350100M000100Y43: org-code check 4, USCC check 3
    assert org_code_check("M000100Y") == "4"
    assert uscc_check("91350100M000100Y4") == "3"
    assert make_uscc("9", "1", "350100", "M000100Y") == "91350100M000100Y43"


def test_issued_codes_are_valid_and_distinct():
    codes = issue_usccs(np.random.default_rng(3), ["331003"] * 500)
    assert len(set(codes)) == 500
    assert all(uscc.is_valid(c) for c in codes)


def test_letter_authority_codes_get_a_correct_check_even_where_stdnum_refuses_them():
    # authority code Y (other) is legal in GB 32100; python-stdnum wrongly rejects it (ARCHITECTURE §6)
    code = make_uscc("Y", "1", "331003", "MA2AKHFG")
    body = "9" + code[1:17]
    assert uscc.is_valid(body + uscc_check(body))  # same body under authority 9 is accepted by stdnum
    assert code[-1] == uscc_check(code[:17])


def test_a_wrong_check_is_always_invalid():
    rng = np.random.default_rng(1)
    for code in issue_usccs(rng, ["331002"] * 50):
        assert not uscc.is_valid(wrong_uscc_check(code, rng))


def test_resident_ids_use_the_area_code_valid_in_the_birth_year():
    ids, births = resident_ids(np.random.default_rng(5), 400)
    assert all(ric.is_valid(i) for i in ids)
    for i, b in zip(ids, births, strict=True):
        year = int(b[:4])
        expected = "332722" if year < 1982 else "332622" if year < 1989 else "332603" if year < 1994 else "331003"
        assert i[:6] == expected and i[6:14] == b.replace("-", "")


@pytest.mark.parametrize("first17,check", [("11010519491231002", "X"), ("44052418800101001", "4")])
def test_ric_check_digit(first17, check):
    assert make_ric(first17[:6], first17[6:14], int(first17[14:])) == first17 + check
