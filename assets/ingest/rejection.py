"""Why a delivered file is refused: a reason code with Chinese and English text and a position."""

from __future__ import annotations

from dataclasses import asdict, dataclass

REASONS: dict[str, tuple[str, str]] = {
    "empty": ("文件为空，没有数据行", "the file is empty: no data rows"),
    "encoding": ("字符编码无法识别（既非UTF-8也非GB18030）", "unknown character encoding (neither UTF-8 nor GB18030)"),
    "encoding_mixed": ("文件混用多种字符编码", "the file mixes character encodings"),
    "encoding_ambiguous": (
        "字符编码不明确（按UTF-8与GB18030均可解码但内容不同）",
        "ambiguous encoding (valid as UTF-8 and as GB18030, with different text)",
    ),
    "encoding_undeclared": (
        "文件的字符编码不是该数据源登记的编码",
        "the file's encoding is not one its source declares",
    ),
    "unreadable": (
        "文件无法读取（已损坏或不是声明的格式）",
        "the file cannot be read (damaged, or not the declared format)",
    ),
    "missing_columns": ("缺少登记的列", "columns of the registered layout are missing"),
    "unexpected_columns": ("出现未登记的列（表结构变更）", "columns not in the registered layout (schema drift)"),
    "duplicate_columns": ("列名重复", "the same column name appears twice"),
    "retyped_columns": (
        "登记列在源库中的数据类型已变更（表结构变更）",
        "registered columns changed type at the source (schema change)",
    ),
    "table_missing": ("源库中没有登记的表", "the registered table is not in the source database"),
    "truncated": ("文件被截断，最后一行不完整", "the file is truncated: its last row is incomplete"),
    "malformed_rows": ("存在字段数与表头不符的行", "rows whose number of fields differs from the header"),
    "malformed_json": ("存在无法解析的JSON行", "lines that are not valid JSON"),
    "duplicate_keys": ("同一行中键重复", "a key appears twice in one line's object"),
    "duplicate_of_rejected": ("与此前已拒收的文件内容完全相同", "byte-identical to a file rejected earlier"),
    "sheets": (
        "无法确定数据所在的工作表（需恰有一个可见且有内容的工作表，或在登记中指定）",
        "cannot tell which worksheet holds the data (exactly one visible sheet with content, or register it)",
    ),
    "sheet_missing": ("缺少登记的工作表", "the registered worksheet is missing"),
    # not collected, and why (landing.py): refused, waiting or ignored
    "symlink": ("符号链接，不予跟随", "a symbolic link: never followed"),
    "uploading": (
        "正在上传（临时文件名），改为正式文件名后采集",
        "an upload in progress (temporary name): collected once renamed",
    ),
    "settling": (
        "文件仍在写入（最近刚被修改），稳定后采集",
        "still being written (modified just now): collected once it settles",
    ),
    "hidden": ("隐藏文件，不采集", "a hidden file: not collected"),
    "subfolder": (
        "位于子文件夹中，不采集；请直接放在落地文件夹",
        "in a subfolder: not collected; deliver into the landing folder itself",
    ),
    "not_regular": ("不是普通文件，不采集", "not a regular file: not collected"),
    "pattern": ("文件名不符合登记的命名规则，不采集", "the name does not match the registered pattern: not collected"),
}


@dataclass(frozen=True)
class Rejection:
    code: str
    detail: str  # what exactly, e.g. the column names
    position: str  # where: 'header', 'line 1234', 'byte 5678', 'file'
    rows_read: int | None  # data rows found before or despite the problem; None if unknowable

    @property
    def reason_zh(self) -> str:
        return REASONS[self.code][0]

    @property
    def reason_en(self) -> str:
        return REASONS[self.code][1]

    def message(self, file: str) -> str:
        return f"{file}: {self.reason_en} — {self.detail} (at {self.position}) / {self.reason_zh}"

    def record(self) -> dict:
        return {**asdict(self), "reason_zh": self.reason_zh, "reason_en": self.reason_en}


class FileRejected(Exception):
    """Raised by readers; carries the rejection so the collector can quarantine the whole file."""

    def __init__(self, rejection: Rejection):
        super().__init__(rejection.detail)
        self.rejection = rejection
