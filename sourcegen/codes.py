"""Identifier codes the generator issues: GB 32100 统一社会信用代码, GB 11714 组织机构代码, GB 11643 身份号码.

Only *issuing* valid codes lives here; validating delivered codes is the governance library's job.
"""

from __future__ import annotations

import numpy as np

# GB 32100-2015 code alphabet: digits and upper-case letters without I, O, Z, S, V.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = [pow(3, i, 31) for i in range(17)]  # 1, 3, 9, 27, 19, 26, 16, …
_ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]
_RIC_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]


def _org_char_value(c: str) -> int:
    # GB 11714: digits keep their value, letters A–Z count 10–35.
    return int(c) if c.isdigit() else ord(c) - ord("A") + 10


def org_code_check(body: str) -> str:
    """Check character of an 8-character GB 11714 organisation-code body."""
    total = sum(_org_char_value(c) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def uscc_check(first17: str) -> str:
    """GB 32100 check character (mod 31) of the first 17 characters."""
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def make_uscc(authority: str, category: str, region: str, org_body: str) -> str:
    """A complete code: authority + category + region + organisation code (with its check) + check."""
    first17 = f"{authority}{category}{region}{org_body}{org_code_check(org_body)}"
    return first17 + uscc_check(first17)


def issue_usccs(rng: np.random.Generator, regions: list[str]) -> list[str]:
    """Distinct enterprise codes (authority 9 = market regulation, category 1 = enterprise).

    Bodies follow the post-2015 pattern ``MA`` + 6 characters, as issued to new registrants.
    """
    # The org-code check may be 'X'; the body avoids letters outside the USCC alphabet.
    body_alphabet = np.array(list("0123456789ABCDEFGHJKLMNPQRTUWXY"))
    seen: set[str] = set()
    out: list[str] = []
    for region in regions:
        while True:
            body = "MA" + "".join(rng.choice(body_alphabet, 6))
            code = make_uscc("9", "1", region, body)
            if code not in seen:
                seen.add(code)
                out.append(code)
                break
    return out


def wrong_uscc_check(code: str, rng: np.random.Generator) -> str:
    """The same code with a different, therefore invalid, check character."""
    choices = [c for c in USCC_ALPHABET if c != code[-1]]
    return code[:-1] + choices[int(rng.integers(len(choices)))]


def ric_check(first17: str) -> str:
    """GB 11643 ISO 7064 MOD 11-2 check character."""
    total = sum(int(c) * w for c, w in zip(first17, _RIC_WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


def make_ric(area: str, birth_yyyymmdd: str, seq3: int) -> str:
    first17 = f"{area}{birth_yyyymmdd}{seq3:03d}"
    return first17 + ric_check(first17)
