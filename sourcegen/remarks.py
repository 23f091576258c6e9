"""Free-text remarks as clerks type them, with every span of personal information labelled.

``labelled(rng, n)`` gives remarks holding names (with and without a cue word, compound surnames),
mobiles (plain, spaced, hyphenated, +86), landlines, resident IDs, e-mails, WeChat IDs and bank cards, in
varied sentences; ``distractors(rng, n)`` gives remarks without any, full of what looks like it (amounts,
order numbers, credit codes, company and place names that start with a surname, dates). The spans are the
truth the redactor (``privacy/transforms.redact``) is measured against: recall and precision.
"""

from __future__ import annotations

import numpy as np

from sourcegen import vocab
from sourcegen.model import resident_ids

COMPOUND_SURNAMES = (
    "欧阳", "诸葛", "司马", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "夏侯", "长孙", "宇文", "端木",
    "南宫", "独孤", "呼延", "轩辕", "司徒", "申屠",
)  # fmt: skip
# Given-name characters that read as names (the generator's own list, plus a few common ones).
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红燕建国志文斌峰辉鹏飞晨宇浩然欣怡婷雪梅兰"
NAME_CUES = (
    "联系人", "经办人", "经办", "业务员", "负责人", "对接人", "联络人", "法人代表", "法定代表人", "填报人", "填表人",
    "收货人", "送货人", "会计", "出纳", "财务", "厂长", "经理", "主管", "统计员", "质检员", "保管员", "司机",
)  # fmt: skip
HONORIFICS = ("先生", "女士", "经理", "主任", "师傅", "会计", "厂长", "科长", "同志")
BEFORE_NAME = ("请", "由", "找", "致电", "告知", "通知", "转告", "询问", "据")
AFTER_NAME = ("说", "表示", "反映", "称", "确认", "签字", "签收", "负责", "填报", "核实")
WECHAT_CUES = ("微信", "微信号", "VX", "vx", "WX", "wechat", "加微信", "V信")
EMAIL_DOMAINS = ("163.com", "qq.com", "126.com", "sina.com", "hymould.cn", "outlook.com")
ENDINGS = ("", "。", "，请核实", "，已确认", "（数据已更正）", "，下月补报", "；资料已齐")


class _Text:
    """A remark being written: literal parts and labelled values, with their character spans."""

    def __init__(self):
        self.parts: list[str] = []
        self.spans: list[tuple[int, int, str]] = []
        self.at = 0

    def say(self, text: str) -> _Text:
        self.parts.append(text)
        self.at += len(text)
        return self

    def value(self, text: str, kind: str) -> _Text:
        self.spans.append((self.at, self.at + len(text), kind))
        return self.say(text)

    def done(self) -> tuple[str, list[list]]:
        return "".join(self.parts), [list(s) for s in self.spans]


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def name(rng: np.random.Generator) -> str:
    surname = _pick(rng, COMPOUND_SURNAMES) if rng.random() < 0.2 else _pick(rng, vocab.SURNAMES)
    given = _pick(rng, GIVEN) + (_pick(rng, GIVEN) if rng.random() < 0.6 else "")
    return surname + given


def mobile(rng: np.random.Generator) -> str:
    digits = f"{_pick(rng, vocab.MOBILE_PREFIXES)}{int(rng.integers(0, 10**8)):08d}"
    a, b, c = digits[:3], digits[3:7], digits[7:]
    return _pick(
        rng, (digits, digits, f"{a} {b} {c}", f"{a}-{b}-{c}", f"+86 {digits}", f"+86-{a}-{b}-{c}", f"86{digits}")
    )


def landline(rng: np.random.Generator) -> str:
    area = _pick(rng, ("0576", "0571", "0574", "021", "010", "0577"))
    digits = 8 if len(area) == 3 or rng.random() < 0.7 else 7  # 8 digits in the big cities, 7 or 8 elsewhere
    local = f"{int(rng.integers(2, 10))}{int(rng.integers(0, 10 ** (digits - 1))):0{digits - 1}d}"
    head, tail = local[:-4], local[-4:]
    return _pick(rng, (f"{area}-{local}", f"({area}){local}", f"{area} {head} {tail}", f"{area}-{head}-{tail}"))


def wechat(rng: np.random.Generator) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    body = "".join(_pick(rng, letters + "0123456789_") for _ in range(int(rng.integers(5, 12))))
    return _pick(rng, (f"wxid_{body}", _pick(rng, letters) + body, _pick(rng, letters).upper() + body))


def email(rng: np.random.Generator) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    user = "".join(_pick(rng, letters) for _ in range(int(rng.integers(3, 8)))) + str(int(rng.integers(0, 999)))
    return f"{user}@{_pick(rng, EMAIL_DOMAINS)}"


def bank_card(rng: np.random.Generator) -> str:
    """A 19-digit card number with its Luhn check digit, as real cards have."""
    body = _pick(rng, ("6222", "6228", "6217", "6214")) + "".join(str(int(rng.integers(10))) for _ in range(14))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def _contact(rng: np.random.Generator, t: _Text, ric: str) -> None:
    """One way of writing down how to reach someone."""
    kind = int(rng.integers(6))
    if kind == 0:
        t.say(_pick(rng, ("电话", "手机", "联系电话", "Tel:", "tel "))).value(mobile(rng), "mobile")
    elif kind == 1:
        t.say(_pick(rng, ("座机", "办公电话", "电话"))).value(landline(rng), "landline")
    elif kind == 2:
        t.say(_pick(rng, WECHAT_CUES) + _pick(rng, ("：", ":", " ", ""))).value(wechat(rng), "wechat")
    elif kind == 3:
        t.say(_pick(rng, ("邮箱", "email:", "E-mail "))).value(email(rng), "email")
    elif kind == 4:
        t.say(_pick(rng, ("身份证号", "身份证", "证件号码："))).value(ric, "ric")
    else:
        t.say(_pick(rng, ("收款账号", "银行卡号", "卡号"))).value(bank_card(rng), "bank_card")


def labelled(rng: np.random.Generator, n: int) -> list[tuple[str, list[list]]]:
    """``n`` remarks, each with one or more labelled spans of personal information."""
    rics, _ = resident_ids(rng, n)
    out = []
    for i in range(n):
        t = _Text()
        form = int(rng.integers(9))
        if form == 0:  # cue word, name, contact
            t.say(_pick(rng, NAME_CUES) + _pick(rng, ("", "：", ":", " ", "为"))).value(name(rng), "person_name")
            t.say(_pick(rng, ("，", " ", "，", "（")))
            _contact(rng, t, rics[i])
        elif form == 1:  # name with an honorific
            t.say(_pick(rng, ("已与", "今日拜访", "", "联系了"))).value(name(rng), "person_name")
            t.say(_pick(rng, HONORIFICS)).say(_pick(rng, ("核对数据", "，", "确认产量", "沟通")))
        elif form == 2:  # a verb before the name
            t.say(_pick(rng, BEFORE_NAME)).value(name(rng), "person_name").say(
                _pick(rng, ("尽快补报", "核实", "提供发票", "到场"))
            )
        elif form == 3 and rng.random() < 0.3:  # a name and its number, run together
            t.say(_pick(rng, ("联系方式：", "", "找"))).value(name(rng), "person_name")
            t.say(_pick(rng, ("", " "))).value(mobile(rng), "mobile")
        elif form == 3:  # the name before a verb
            t.say(_pick(rng, ("", "车间", "据悉，"))).value(name(rng), "person_name").say(_pick(rng, AFTER_NAME))
            t.say(_pick(rng, ("本月停产两周", "数据无误", "设备已维修", "")))
        elif form == 4:  # a contact only
            t.say(_pick(rng, ("有问题请联系，", "回访", "催报", "")))
            _contact(rng, t, rics[i])
        elif form == 5:  # two contacts
            _contact(rng, t, rics[i])
            t.say(_pick(rng, ("；", "，", " 或 ")))
            _contact(rng, t, rics[i])
        elif form == 6:  # a person and their ID
            t.say(_pick(rng, ("法定代表人", "股东", "申请人"))).value(name(rng), "person_name")
            t.say(_pick(rng, ("（身份证", "，证件号", " ID "))).value(rics[i], "ric")
            t.say(_pick(rng, ("）", "", "。")))
        elif form == 7:  # a figure and a contact
            t.say(f"本月产值{int(rng.integers(10, 9999))}万元，").say(_pick(rng, ("经办", "业务员", "联系人")))
            t.value(name(rng), "person_name")
            _contact(rng, t, rics[i])
        else:  # mixed with an order number and a date
            t.say(
                f"订单号PO{int(rng.integers(2023, 2025))}-{int(rng.integers(0, 10**6)):06d}于2023年{int(rng.integers(1, 13))}月交付，"
            )
            t.say(_pick(rng, ("收货人", "送货人", "司机"))).value(name(rng), "person_name")
            _contact(rng, t, rics[i])
        t.say(_pick(rng, ENDINGS))
        out.append(t.done())
    return out


DISTRACTORS = (
    "本月产量下降，因设备检修停机{d}天",
    "客户：台州市黄岩{s}氏模具有限公司，合同金额{m}元",
    "订单号PO2023-{o}，数量{q}件",
    "统一社会信用代码91331003MA{c}，已核对",
    "发货至张家港保税区，运费{m}元",
    "王牌系列产品出口{q}件",
    "黄岩区经信局通知：{d}日前完成填报",
    "高新区新厂房{q}平方米投产",
    "同比增长{p}%，环比下降{p}%",
    "金额{m}元（含税），发票号{o}",
    "设备编号DEV{o}，累计运行{q}小时",
    "于2023-0{d}-1{d}完成环评验收",
    "李家村租赁用地{q}亩",
    "按照《黄岩区亩均效益评价办法》报送",
    "电费{m}元，用电{q}千瓦时",
    "批次{o}合格率{p}%",
)


def distractors(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` remarks without personal information, written to look as if they might hold some."""
    out = []
    for _ in range(n):
        template = _pick(rng, DISTRACTORS)
        out.append(
            template.format(
                d=int(rng.integers(1, 10)),
                s=_pick(rng, vocab.SURNAMES),
                m=int(rng.integers(1000, 99_999_999)),
                o=f"{int(rng.integers(0, 10**6)):06d}",
                q=int(rng.integers(1, 99999)),
                c=f"{int(rng.integers(0, 10**8)):08d}",
                p=int(rng.integers(1, 99)),
            )
        )
    return out
