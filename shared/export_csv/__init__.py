"""The core-system export (基幹系システムの夜間出力): one folder of CSV files per town.

Wire format (full reference: docs/core-export.md)::

    <root>/<town code>/          e.g. 15307/
        town.json                the Town, exported_at, and the CSV files' encoding
        shien_sochi.csv          支援措置 (imported and synced before anything else)
        setai.csv  jumin.csv     households, residents (with 除票)
        kazei.csv  keijidosha.csv  nouzei.csv      tax, light vehicles, installments
        kokuho.csv  yoshiensha.csv  shokuin.csv  gaiji.csv

CSV: UTF-8 without BOM (or CP932 when town.json declares "encoding": "cp932"), LF
written, CRLF or LF read, RFC 4180 quoting, a fixed Japanese header per file, dates
YYYY-MM-DD, booleans 1/0, empty for none, lists joined by ";". No line breaks or control
characters inside a field, so line N is row N. Text is kept byte-exact (IVS, non-BMP,
compatibility ideographs: never normalised); legacy 外字 (U+E000–U+F8FF) in text columns are
mapped through gaiji.csv, and an unmapped one is an error.

Errors::

    ExportError                      anything wrong with an export
     ├── ExportFormatError           a file breaks the layout: .path .line .column
     │    │                          .column_index .expected .value .also; message in
     │    │                          Japanese, "15307/jumin.csv:3:7(生年月日): …"
     │    ├── ExportEncodingError    bytes not in the declared encoding: .offset .looks_like
     │    └── ExportReferenceError   a row names an id missing from another file
     ├── GaijiError                  apply_gaiji met an unmapped legacy 外字: .code_point
     └── ExportWriteError            the model holds a value the layout cannot carry
"""

from .errors import (
    ExportEncodingError,
    ExportError,
    ExportFormatError,
    ExportReferenceError,
    ExportWriteError,
    GaijiError,
)
from .folder import (
    TownFiles,
    cross_check,
    open_town,
    parse_file,
    read_manifest,
    read_town,
    write_export,
    write_town,
)
from .gaiji import apply_gaiji, gaiji_table, is_legacy_gaiji
from .layout import FILES, FileSpec
from .town_json import Manifest

FILE_NAMES: tuple[str, ...] = tuple(spec.name for spec in FILES)

__all__ = [
    "FILES",
    "FILE_NAMES",
    "ExportEncodingError",
    "ExportError",
    "ExportFormatError",
    "ExportReferenceError",
    "ExportWriteError",
    "FileSpec",
    "GaijiError",
    "Manifest",
    "TownFiles",
    "apply_gaiji",
    "cross_check",
    "gaiji_table",
    "is_legacy_gaiji",
    "open_town",
    "parse_file",
    "read_manifest",
    "read_town",
    "write_export",
    "write_town",
]
