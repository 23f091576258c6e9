"""De-identification transforms (GB/T 37964 techniques), vectorised polars expressions.

Pseudonyms are keyed HMAC-SHA-256 (polars-hash, in Rust: no Python loop per row) over a domain and the
standardised value, so the same person gets the same pseudonym in every dataset and joins still work;
they carry the key version (``k1:…``) so that rotation is visible and old pseudonyms stay matchable.
"""

from __future__ import annotations

import polars as pl
import polars_hash  # noqa: F401  (registers the ``chash`` namespace)

from privacy.keys import KeyRing

PSEUDONYM_HEX = 32  # 128 bits of the HMAC: collisions are negligible at any warehouse's scale
CJK = r"\u4e00-\u9fff"
# common surnames (百家姓, the most frequent ~120 cover ~90% of the population)
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪"
    "范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞"
    "颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻"
    "祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇"
    "栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
NAME_CUE = r"(?:联系人|经办人|负责人|法定代表人|法人|联系|申报人|填报人|签收人)"
# each pattern: (?P<b>border)(?P<v>value)(?P<a>border), the value in group 2; a number inside a longer
# run of letters and digits (a hash, a code) is not a phone number or an ID
_ND = r"(?P<b>^|[^0-9A-Za-z])", r"(?P<a>$|[^0-9A-Za-z])"
PATTERNS = {
    "ric": _ND[0] + r"(?P<v>[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx])" + _ND[1],
    "mobile": _ND[0] + r"(?P<v>(?:\+?86)?1[3-9]\d{9})" + _ND[1],
    "email": r"(?P<b>)(?P<v>[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})(?P<a>)",
    "bank_card": _ND[0] + r"(?P<v>\d{16,19})" + _ND[1],
    "person_name": r"(?P<b>" + NAME_CUE + r"[：:\s]*)(?P<v>[" + SURNAMES + r"][" + CJK + r"]{1,2})(?P<a>)",
}
REDACTED = {
    "ric": "[身份证号]",
    "mobile": "[手机号]",
    "email": "[邮箱]",
    "bank_card": "[银行卡号]",
    "person_name": "[姓名]",
}


def pseudonym(e: pl.Expr, ring: KeyRing, domain: str, version: int | None = None) -> pl.Expr:
    """``k<version>:<hex>`` = HMAC-SHA-256(key, domain + U+001F + value), first 128 bits; null stays null."""
    v, key = ring.key(version)
    mac = pl.concat_str([pl.lit(domain + "\x1f"), e.cast(pl.String)]).chash.hmac_sha256(key=key)
    return pl.when(e.is_null()).then(None).otherwise(pl.lit(f"k{v}:") + mac.str.slice(0, PSEUDONYM_HEX))


def mask(e: pl.Expr, keep_head: int, keep_tail: int, char: str = "*") -> pl.Expr:
    """Keep the first and last characters, star the rest: mask(ric, 3, 4) → 330***********1234."""
    n = e.str.len_chars()
    run = pl.lit(char * 256)
    masked = pl.concat_str(
        [e.str.slice(0, keep_head), run.str.slice(0, n - keep_head - keep_tail), e.str.slice(-keep_tail)]
    )
    return pl.when(e.is_null()).then(None).when(n > keep_head + keep_tail).then(masked).otherwise(run.str.slice(0, n))


def mask_ric(e: pl.Expr) -> pl.Expr:
    return mask(e, 3, 4)


def mask_mobile(e: pl.Expr) -> pl.Expr:
    return mask(e, 3, 4)


def birth_year(ric: pl.Expr) -> pl.Expr:
    """Generalisation: a resident ID → the birth year (as an integer)."""
    return ric.str.slice(6, 4).cast(pl.Int32, strict=False)


def age_band(ric: pl.Expr, on: int, width: int = 10) -> pl.Expr:
    """Generalisation: a resident ID → an age band in year ``on``, e.g. '30-39'."""
    low = ((pl.lit(on) - birth_year(ric)) // width) * width
    return pl.concat_str([low.cast(pl.String), pl.lit("-"), (low + width - 1).cast(pl.String)])


def district(address: pl.Expr) -> pl.Expr:
    """Generalisation: an address → its province/city/district prefix (浙江省台州市黄岩区…)."""
    return address.str.extract(r"^((?:[^省]+省)?(?:[^市]+市)?(?:[^区县]+[区县]))", 1)


def region_prefix(code: pl.Expr, level: str) -> pl.Expr:
    """Generalisation: a GB/T 2260 code → its province ('330000') or city ('331000')."""
    keep = {"province": 2, "city": 4}[level]
    return code.str.slice(0, keep) + pl.lit("0" * (6 - keep))


def suppress(e: pl.Expr) -> pl.Expr:
    return pl.lit(None, dtype=pl.String).alias(e.meta.output_name())


def top_bottom(e: pl.Expr, low: float | None = None, high: float | None = None) -> pl.Expr:
    """Top and bottom coding: values beyond the bounds are set to them."""
    return e.clip(low, high)


def redact(text: pl.Expr) -> pl.Expr:
    """Personal information inside free text replaced by a label: IDs, mobiles, e-mails, card numbers and
    names introduced by a cue word (联系人张三 → 联系人[姓名])."""
    out = text
    for kind in ("ric", "bank_card", "mobile", "email", "person_name"):
        out = out.str.replace_all(PATTERNS[kind], f"${{b}}{REDACTED[kind]}${{a}}")
    return out
