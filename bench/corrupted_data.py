"""Every row of a real data file is read or reported, before and after corrupting it.

Copies real files from the data dir (BIASCARD_DATA_DIR, else ../shared/datasets) into a temp
dir and injects, on rows spread over each file: a stray quote at the start of a line, an
inserted row with an extra field, a row cut short (its last field dropped), a byte that is not
UTF-8, an inserted blank line and an inserted NUL line (JSONL: a truncated line, an inserted
non-object line, a byte that is not UTF-8, a blank and a NUL line). Each file, original and
corrupted, is read twice:

- by the readers (`data/adapters/readers.py`), with the arguments its adapter passes: rows in
  the file, rows kept, rows reported (file:line); rows in = kept + reported, the reported lines
  are exactly the corrupted ones, and every kept row equals the original row;
- by its adapter, on a copy of the dataset folder holding the file: rows in the files whose
  rows become records = records + rows reported + duplicates removed by protocol, and every
  corrupted line is among the adapter's reports.

Rows in a file are counted without the readers: pandas for a CSV/TSV (the counts each
SOURCE.md states), non-blank lines for a JSONL, plus the rows the corruption inserted (a blank
line is not a row; a NUL line is one, a bad one). Exit status 1 if any check fails.

  python bench/corrupted_data.py [--keep DIR] [--no-save]
"""
from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

FRACTIONS = (0.15, 0.3, 0.45, 0.6, 0.75, 0.9)  # where the corruptions go, as shares of the rows


@dataclass(frozen=True)
class Target:
    adapter: str
    folder: str
    file: str
    kind: str  # csv | tsv | jsonl
    reader: dict = field(default_factory=dict)  # the iter_csv arguments the adapter passes
    record_files: tuple[tuple[str, str], ...] = ()  # (file, delimiter) whose rows become records

    @property
    def delimiter(self) -> str:
        return self.reader.get("delimiter", ",")


# reader arguments as in data/adapters/<adapter>.py (the adapter run checks the real call)
TARGETS = (
    Target("babe", "babe", "final_labels_SG2.csv", "csv", {"delimiter": ";", "multiline": ("text",)},
           (("final_labels_SG2.csv", ";"),)),
    Target("gvfc", "gvfc", "gvfc_headlines_annotations.csv", "csv", {}, (("gvfc_headlines_annotations.csv", ","),)),
    Target("sdg_trail22", "sdg_trail22", "Final_Additional_Data.csv", "tsv", {"delimiter": "\t", "multiline": ("text",)},
           (("Train_data.csv", ","), ("Test_data.csv", ","), ("Final_Additional_Data.csv", "\t"))),
    Target("ukraine", "ukraine_multidim_news_bias", "articles_sentences_annotations.jsonl.gz", "jsonl", {},
           (("sentences_binary_labels.csv", ","),)),
)


# ---------------------------------------------------------------- files


def read_text_lines(path: Path) -> list[str]:
    from biascard.data.adapters.readers import read_lines

    return read_lines(path)


def write_text_lines(path: Path, lines: list[str]) -> None:
    data = "".join(lines).encode("utf-8", errors="surrogateescape")  # keeps injected bad bytes
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)


def count_rows(path: Path, kind: str, delimiter: str = ",") -> int:
    """Rows in a clean file, counted without the readers: pandas (as SOURCE.md), or JSONL lines."""
    if kind == "jsonl":
        return sum(1 for line in read_text_lines(path) if line.strip())
    import pandas as pd

    return len(pd.read_csv(path, sep=delimiter, dtype=str, keep_default_na=False))


def read_rows(path: Path, target: Target) -> tuple[list[tuple[int, dict]], list]:
    """(kept (line, row) pairs, reported BadRows) from the real readers."""
    from biascard.data.adapters.readers import iter_csv, iter_jsonl
    from biascard.data.errors import Report

    report = Report(stream=io.StringIO())
    if target.kind == "jsonl":
        kept = list(iter_jsonl(path, report))
    else:
        kept = list(iter_csv(path, report, **target.reader))
    return kept, report.bad


# ---------------------------------------------------------------- corruption plan


@dataclass
class Line:
    orig: int | None  # the original line number; None for an inserted line
    text: str
    op: str | None = None  # the corruption of this line, if any
    row: bool = True  # an inserted line that is a row (a blank line is not)


def _ending(line: str) -> str:
    return line[len(line.rstrip("\r\n")):] or "\n"


def _cut_last_field(line: str, delimiter: str) -> str:
    fields = next(csv.reader([line], delimiter=delimiter))
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator=_ending(line)).writerow(fields[:-1])
    return buf.getvalue()


def _bad_byte(line: str) -> str:
    body = line.rstrip("\r\n")
    half = len(body) // 2
    return body[:half] + "\udcff" + body[half:] + _ending(line)  # byte 0xff once written


def _single_line_rows(kept: list[tuple[int, dict]], n_lines: int, lines: list[str]) -> list[int]:
    """Row starts whose row is one line and does not open with a quote: where to corrupt."""
    starts = [n for n, _ in kept]
    nxt = dict(zip(starts, starts[1:] + [n_lines + 1]))
    return [n for n in starts if nxt[n] == n + 1 and not lines[n - 1].startswith('"')]


def corrupt(lines: list[str], candidates: list[int], kind: str, delimiter: str) -> list[Line]:
    """The corrupted file as Lines; `candidates` are original lines (1-based) that are rows."""
    picks = [candidates[min(len(candidates) - 1, int(f * len(candidates)))] for f in FRACTIONS]
    if len(set(picks)) < len(picks):
        raise ValueError(f"need {len(FRACTIONS)} distinct rows to corrupt, have {len(candidates)}")
    out = [Line(i, t) for i, t in enumerate(lines, 1)]
    at = {p: out[p - 1] for p in picks}
    inserts: dict[int, Line] = {}  # after original line -> inserted line
    a, b, c, d, e, f = picks
    nl = _ending(lines[a - 1])
    if kind == "jsonl":
        body = at[a].text.rstrip("\r\n")
        at[a].text, at[a].op = body[: len(body) // 2] + nl, "truncated JSON"
        inserts[b] = Line(None, "[1, 2]" + nl, "not an object")
        at[c].text, at[c].op = _bad_byte(at[c].text), "byte 0xff"
        inserts[d] = Line(None, '{"id": "x", oops}' + nl, "invalid JSON")
    else:
        at[a].text, at[a].op = '"' + at[a].text, "stray quote"
        inserts[b] = Line(None, at[b].text.rstrip("\r\n") + delimiter + "surplus" + nl, "extra field")
        at[c].text, at[c].op = _cut_last_field(at[c].text, delimiter), "last field cut"
        inserts[d] = Line(None, _bad_byte(at[d].text), "byte 0xff")  # a copy, so the original stays
    inserts[e] = Line(None, nl, "blank line", row=False)
    inserts[f] = Line(None, "\x00" + nl, "NUL line")
    result = []
    for line in out:
        result.append(line)
        if line.orig in inserts:
            result.append(inserts[line.orig])
    return result


# ---------------------------------------------------------------- checks


def _short(bad) -> dict:
    return {"where": f"{Path(bad.file).name}:{bad.line}", "reason": bad.reason}


def check_clean(path: Path, target: Target) -> dict:
    rows_in = count_rows(path, target.kind, target.delimiter)
    kept, bad = read_rows(path, target)
    return {"file": target.file, "version": "original", "rows_in": rows_in, "kept": len(kept),
            "reported": len(bad), "reports": [_short(b) for b in bad],
            "accounted": rows_in == len(kept) + len(bad), "corrupt_lines_reported": None, "kept_unchanged": None}


def check_corrupted(original: Path, target: Target, dest: Path) -> dict:
    """Write the corrupted copy of `original` to `dest` and check the readers' accounting."""
    lines = read_text_lines(original)
    orig_kept, orig_bad = read_rows(original, target)
    if orig_bad:
        raise ValueError(f"{original}: the original already has bad rows; corrupt a clean file")
    cands = list(range(1, len(lines) + 1)) if target.kind == "jsonl" else \
        _single_line_rows(orig_kept, len(lines), lines)
    if target.kind == "jsonl":
        cands = [n for n in cands if lines[n - 1].strip()]
    plan = corrupt(lines, cands, target.kind, target.delimiter)
    write_text_lines(dest, [x.text for x in plan])
    new_line = {x.orig: i for i, x in enumerate(plan, 1) if x.orig is not None}
    expected_bad = {i for i, x in enumerate(plan, 1) if x.op and x.row}
    added = sum(1 for x in plan if x.orig is None and x.row)
    rows_in = count_rows(original, target.kind, target.delimiter) + added
    kept, bad = read_rows(dest, target)
    corrupted_orig = {x.orig for x in plan if x.op and x.orig is not None}
    want = {new_line[n]: row for n, row in orig_kept if n not in corrupted_orig}
    return {"file": target.file, "version": "corrupted", "rows_in": rows_in, "kept": len(kept),
            "reported": len(bad), "reports": [_short(b) for b in bad],
            "accounted": rows_in == len(kept) + len(bad),
            "corrupt_lines_reported": {b.line for b in bad} == expected_bad,
            "kept_unchanged": dict(kept) == want,
            "injected": [{"line": i, "op": x.op} for i, x in enumerate(plan, 1) if x.op]}


def run_adapter(target: Target, root: Path, files_in: dict[str, int], corrupted: dict | None) -> dict:
    """The adapter on `root`: rows in its record files = records + reported + removed there."""
    from biascard.data.adapters import ADAPTERS
    from biascard.data.errors import Report

    report = Report(stream=io.StringIO())
    parts = ADAPTERS[target.adapter].read(root, report)
    records = sum(len(v) for v in parts.values())
    in_files = lambda rows: [b for b in rows if Path(b.file).name in files_in]  # noqa: E731
    bad, removed = in_files(report.bad), in_files(report.removed)
    rows_in = sum(files_in.values())
    out = {"adapter": target.adapter, "version": "corrupted" if corrupted else "original",
           "record_files": files_in, "rows_in": rows_in, "records": records, "reported": len(bad),
           "removed": len(removed), "accounted": rows_in == records + len(bad) + len(removed),
           "reported_elsewhere": len(report.bad) - len(bad),
           "reports": [_short(b) for b in report.bad]}
    if corrupted:
        got = {b.line for b in report.bad if Path(b.file).name == target.file}
        want = {x["line"] for x in corrupted["injected"] if x["op"] != "blank line"}
        out["corrupt_lines_reported"] = want <= got
    return out


def check_target(target: Target, data: Path, work: Path) -> list[dict]:
    """Reader and adapter checks of one target, original and corrupted."""
    src = data / target.folder
    clean_root, bad_root = work / "original" / target.folder, work / "corrupted" / target.folder
    for root in (clean_root, bad_root):
        shutil.copytree(src, root, dirs_exist_ok=True)
    reads = [check_clean(clean_root / target.file, target)]
    reads.append(check_corrupted(clean_root / target.file, target, bad_root / target.file))
    files_in = {f: count_rows(clean_root / f, "csv", delim) for f, delim in target.record_files}
    bad_files_in = dict(files_in)
    if target.file in bad_files_in:
        bad_files_in[target.file] = reads[1]["rows_in"]
    adapters = [run_adapter(target, clean_root, files_in, None),
                run_adapter(target, bad_root, bad_files_in, reads[1])]
    return reads + adapters


# ---------------------------------------------------------------- output


def _yes(v) -> str:
    return "-" if v is None else ("yes" if v else "**NO**")


def print_results(results: list[dict]) -> bool:
    reads = [r for r in results if "file" in r]
    adapters = [r for r in results if "adapter" in r]
    print("\nreaders (data/adapters/readers.py, with the adapter's arguments):")
    print(common.table([[r["file"], r["version"], r["rows_in"], r["kept"], r["reported"], _yes(r["accounted"]),
                         _yes(r["corrupt_lines_reported"]), _yes(r["kept_unchanged"])] for r in reads],
                       ["file", "version", "rows in", "kept", "reported", "in = kept + reported",
                        "corrupted lines reported", "kept rows unchanged"]))
    print("\nadapters (records from the files whose rows become records):")
    print(common.table([[r["adapter"], r["version"], r["rows_in"], r["records"], r["reported"], r["removed"],
                         _yes(r["accounted"]), _yes(r.get("corrupt_lines_reported")), r["reported_elsewhere"]]
                        for r in adapters],
                       ["adapter", "version", "rows in", "records", "reported", "removed by protocol",
                        "in = records + reported + removed", "corrupted lines reported", "reports in other files"]))
    for r in reads:
        if r["version"] == "corrupted":
            print(f"\n{r['file']} (corrupted): injected " + ", ".join(f"line {x['line']} {x['op']}" for x in r["injected"]))
            for b in r["reports"]:
                print(f"  reported {b['where']}: {b['reason'][:110]}")
    checks = [v for r in results for k, v in r.items() if k in ("accounted", "corrupt_lines_reported", "kept_unchanged")]
    ok = all(v is not False for v in checks)
    print(f"\nall checks passed: {ok}")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="write the copies here and keep them (default: a temp dir, removed)")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    from biascard.data.paths import data_dir

    with common.report("corrupted_data", argv, save=not args.no_save):
        work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="biascard-corrupt-"))
        print(f"data dir: {data_dir()}; copies in {work}")
        results = []
        try:
            for target in TARGETS:
                results += check_target(target, data_dir(), work)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        ok = print_results(results)
    if not args.no_save:
        (common.RESULTS / "corrupted_data.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
