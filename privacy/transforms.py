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
COMPOUND_SURNAMES = (
    "欧阳|诸葛|司马|上官|东方|皇甫|尉迟|公孙|慕容|令狐|夏侯|长孙|宇文|端木|南宫|西门|独孤|呼延|轩辕|司徒|申屠|"
    "万俟|闻人|赫连|澹台|太史|仲孙|钟离|宗政|濮阳|淳于|单于|公羊|公冶|百里|东郭|南门|第五"
)
# Words that introduce a person: 联系人张三, 经办：李四, 业务员王五, 负责人为赵六.
NAME_CUE = (
    r"(?:联系方式|联系人|联络人|对接人|经办人|经办|业务员|负责人|法定代表人|法人代表|法人|申报人|填报人|填表人|"
    r"签收人|收货人|送货人|申请人|股东|会计|出纳|财务|厂长|经理|主管|统计员|质检员|保管员|司机|联系)"
)
# A given name is one or two characters; a second character that would start the next word (电话, 先生,
# 说, 确认 …) or that names a place or an organisation (黄岩区, 王牌模具) ends the name before it.
_STOP = "协助帮来去到从向对给把被让叫做请也都还就才又再并而或电手先女经主师傅同说的在已要于和与及等是为将反负联确核签填老总处科书会出财厂微邮身卡证号区县市省镇乡村公司局委办中心模塑业有限集团技所站院校队部"
_GIVEN = f"[{CJK}--[{_STOP}]](?:[{CJK}--[{_STOP}]])?"
_NAME = f"(?:{COMPOUND_SURNAMES}|[{SURNAMES}]){_GIVEN}"
_HONORIFIC = r"(?:先生|女士|小姐|同志|经理|主任|老师|师傅|会计|厂长|科长|处长|书记|部长)"
_BEFORE = r"(?:请|由|找|致电|告知|通知|转告|询问|据悉，|据|拜访了?|陪同|感谢|委托|授权)"
_AFTER = r"\s*(?:说|表示|反映|称|确认|签字|签收|负责|填报|核实|的手机|的电话|电话|手机|联系电话|\[手机号\]|\[电话\]|\[微信号\])"
_SEP = r"[-\s]?"
# each pattern: (?P<b>border)(?P<v>value)(?P<a>border), the value in group 2; a number inside a longer
# run of letters and digits (a hash, a code) is not a phone number or an ID
_ND = r"(?P<b>^|[^0-9A-Za-z])", r"(?P<a>$|[^0-9A-Za-z])"
PATTERNS = {
    "ric": _ND[0] + r"(?P<v>[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx])" + _ND[1],
    "bank_card": _ND[0] + r"(?P<v>\d{16,19})" + _ND[1],
    # 13812345678, 138 1234 5678, 138-1234-5678, +86 138…, 86138…
    "mobile": _ND[0] + r"(?P<v>(?:\+?86" + _SEP + r")?1[3-9]\d(?:" + _SEP + r"\d{4}){2})" + _ND[1],
    # 0576-88881234, (0576)88881234, 0576 8888 1234, 021-12345678: an area code, then 7 or 8 digits
    "landline": _ND[0] + r"(?P<v>(?:\(0\d{2,3}\)|0\d{2,3})" + _SEP + r"\d{3,4}" + _SEP + r"\d{4})" + _ND[1],
    "email": r"(?P<b>)(?P<v>[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})(?P<a>)",
    "wechat_id": r"(?P<b>^|[^0-9A-Za-z])(?P<v>wxid_[A-Za-z0-9_]{4,30})(?P<a>$|[^A-Za-z0-9_])",
    # a cue that stands on its own (not the WX inside a permit number), then an ID of letters and digits
    "wechat": r"(?P<b>(?:^|[^0-9A-Za-z])(?:微信号?|[Vv][Xx]|[Ww][Xx]|[Ww]e[Cc]hat|V信|威信)\s*[：:]?\s*)"
    r"(?P<v>[A-Za-z][-_A-Za-z0-9]{5,24})(?P<a>$|[^-_A-Za-z0-9])",
    "person_name": r"(?P<b>" + NAME_CUE + r"(?:[：:\s]|为|是|了)*)(?P<v>" + _NAME + r")(?P<a>)",
    "person_name_honorific": r"(?P<b>)(?P<v>" + _NAME + r")(?P<a>" + _HONORIFIC + r")",
    "person_name_before": r"(?P<b>" + _BEFORE + r")(?P<v>" + _NAME + r")(?P<a>)",
    "person_name_after": r"(?P<b>)(?P<v>" + _NAME + r")(?P<a>" + _AFTER + r")",
}
REDACTED = {
    "ric": "[身份证号]",
    "mobile": "[手机号]",
    "landline": "[电话]",
    "email": "[邮箱]",
    "bank_card": "[银行卡号]",
    "wechat": "[微信号]",
    "wechat_id": "[微信号]",
    "person_name": "[姓名]",
    "person_name_honorific": "[姓名]",
    "person_name_before": "[姓名]",
    "person_name_after": "[姓名]",
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
    """Personal information inside free text replaced by a label: resident IDs, bank cards, mobiles (spaced,
    hyphenated, +86), landlines, e-mails, WeChat IDs, and names — after a cue word (联系人张三, 业务员：李四),
    with an honorific (王芳女士), after a request (请张伟…) or before a statement (李强确认…), compound
    surnames included (欧阳…). Measured against the generator's labelled remarks (tests/test_redaction.py)."""
    out = text
    for kind in PATTERNS:  # IDs and cards before phone numbers: a longer number is not read as a shorter one
        out = out.str.replace_all(PATTERNS[kind], f"${{b}}{REDACTED[kind]}${{a}}")
    return out
