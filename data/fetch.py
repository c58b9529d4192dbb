"""`biascard data fetch NAME`: download a dataset's files at a pinned commit, verified by sha256.

The manifest is `data/sources.json`. A file is taken from `<mirror>/<folder>/<path>` when a
mirror is given (--base-url or BIASCARD_DATA_MIRROR), else from its byte-identical upstream
URL. Files that were derived from upstream (converted, merged, gzipped) have no such URL and
must come from a mirror or be staged by hand (data/README.md).
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import secrets
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from . import paths
from .errors import DataError

MANIFEST = Path(__file__).resolve().with_name("sources.json")
MIRROR_ENV = "BIASCARD_DATA_MIRROR"
README_HINT = "data/README.md, section 'Staging derived files'"
CHUNK = 1 << 16
PROGRESS_MIN_BYTES = 1 << 20

# Adapter names -> dataset folders. Kept here so fetching works without importing adapters.
ALIASES = {
    "babe": "babe",
    "mbic": "mbic",
    "basil": "basil",
    "ukraine": "ukraine_multidim_news_bias",
    "gvfc": "gvfc",
    "logic": "logic_fallacy_jin2022",
    "logicclimate": "logic_fallacy_jin2022",
    "allsides": "article_bias_prediction_allsides",
    "sdg_trail22": "sdg_trail22",
    "trail22": "sdg_trail22",
    "sdg": "sdg_trail22",
}
# Names that are valid datasets but have nothing to download.
NOT_FETCHABLE = {
    "cards": "the cards adapter reads card-labeled JSONL you bring yourself; there is nothing to fetch",
}

_NO_NETWORK_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.ECONNREFUSED}


@dataclass
class Fetched:
    name: str
    folder: Path
    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class NeedsStaging(DataError):
    """Derived files with no mirror: they can only be staged by hand or from a mirror."""


def load_manifest(path: Path = MANIFEST) -> dict:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read the dataset manifest: {e}") from e
    for folder, entry in manifest.get("datasets", {}).items():
        for i, f in enumerate(entry.get("files", [])):
            rel = f.get("path", "")
            # A manifest path must stay inside the dataset folder.
            if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise DataError(f"{path}: datasets.{folder}.files[{i}].path: bad relative path {rel!r}")
            if not f.get("sha256") or not (f.get("url") or f.get("derived")):
                raise DataError(f"{path}: datasets.{folder}.files[{i}] ({rel}): needs sha256 and url or derived")
    return manifest


def resolve(name: str, manifest: dict | None = None) -> str:
    """Adapter name or folder name -> folder name in the manifest."""
    datasets = (manifest or load_manifest())["datasets"]
    key = name.strip()
    if key in datasets:
        return key
    if key.lower() in ALIASES:
        return ALIASES[key.lower()]
    if key.lower() in NOT_FETCHABLE:
        raise DataError(f"{name}: {NOT_FETCHABLE[key.lower()]}")
    known = sorted(set(datasets) | set(ALIASES))
    raise DataError(f"unknown dataset {name!r}; known: {', '.join(known)}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _mirror_url(base_url: str, folder: str, rel: str) -> str:
    return f"{base_url.rstrip('/')}/{urllib.parse.quote(folder)}/{urllib.parse.quote(rel)}"


def _network_error(url: str, reason: object) -> DataError:
    host = urllib.parse.urlsplit(url).hostname or url
    port = urllib.parse.urlsplit(url).port
    where = f"{host}:{port}" if port else host
    if isinstance(reason, socket.gaierror):
        why = f"DNS lookup failed: {reason}"
    elif isinstance(reason, (TimeoutError, socket.timeout)):
        why = "timed out"
    elif isinstance(reason, ConnectionRefusedError):
        why = "connection refused"
    else:
        why = str(reason)
    return DataError(f"no network: could not reach {where} ({why}) while fetching {url}")


def _is_network_failure(reason: object) -> bool:
    if isinstance(reason, (socket.gaierror, TimeoutError, socket.timeout, ConnectionError)):
        return True
    return isinstance(reason, OSError) and reason.errno in _NO_NETWORK_ERRNOS


def _open(url: str, timeout: float):
    """One place that touches the network (tests replace it to prove nothing else does)."""
    req = urllib.request.Request(url, headers={"User-Agent": "biascard-data-fetch"})
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s) or file mirror URLs


def _download(url: str, target: Path, expected: str, size: int | None, label: str, timeout: float, progress: bool) -> None:
    """Stream url into a temp file beside target, check sha256, then move it into place."""
    # Not mkstemp: its 0600 mode would stick to the data file; open("xb") honours the umask.
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = open(tmp, "xb")
    except OSError as e:
        raise DataError(f"{label}: cannot write into {target.parent}: {e.strerror or e}") from None
    try:
        with out:
            h, got = _stream(url, out, label, size, timeout, progress)
        actual = h.hexdigest()
        if actual != expected:
            raise DataError(
                f"{label}: sha256 mismatch: expected {expected}, got {actual} "
                f"({got} bytes from {url}); the download was discarded"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _stream(url: str, out, label: str, size: int | None, timeout: float, progress: bool):
    h = hashlib.sha256()
    got = 0
    try:
        with _open(url, timeout) as resp:
            bar = _progress_bar(label, size, progress)
            try:
                for block in iter(lambda: resp.read(CHUNK), b""):
                    h.update(block)
                    got += len(block)
                    try:
                        out.write(block)
                    except OSError as e:
                        raise DataError(f"{label}: cannot write {out.name}: {e.strerror or e}") from None
                    if bar is not None:
                        bar.update(len(block))
            finally:
                if bar is not None:
                    bar.close()
    except urllib.error.HTTPError as e:
        raise DataError(f"{label}: HTTP {e.code} {e.reason} from {url}") from None
    except urllib.error.URLError as e:
        if _is_network_failure(e.reason):
            raise _network_error(url, e.reason) from None
        raise DataError(f"{label}: could not download {url}: {e.reason}") from None
    except http.client.HTTPException as e:
        raise DataError(f"{label}: the connection broke while downloading {url}: {e!r}") from None
    except OSError as e:
        # Raised mid-transfer (read timeout, reset) rather than wrapped in URLError.
        if _is_network_failure(e):
            raise _network_error(url, e) from None
        raise DataError(f"{label}: could not download {url}: {e}") from None
    return h, got


def _progress_bar(label: str, size: int | None, progress: bool):
    if not progress or not size or size < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=size, unit="B", unit_scale=True, desc=label, file=sys.stderr, leave=False)


def fetch(
    name: str,
    dest: str | Path | None = None,
    base_url: str | None = None,
    timeout: float = 60.0,
    progress: bool = True,
) -> Fetched:
    """Download every file of one dataset into `<dest or data dir>/<folder>/`.

    Files already present with the right sha256 are skipped. Raises DataError on a network
    failure or hash mismatch, and NeedsStaging (after fetching what it can) when derived files
    are missing and no mirror is given.
    """
    manifest = load_manifest()
    folder = resolve(name, manifest)
    entry = manifest["datasets"][folder]
    base_url = base_url or os.environ.get(MIRROR_ENV) or None
    root = Path(dest).expanduser().resolve() if dest else paths.data_dir()
    out_dir = root / folder
    result = Fetched(name=name, folder=out_dir)
    unstageable = []
    for f in entry["files"]:
        rel, expected = f["path"], f["sha256"]
        target = out_dir / rel
        label = f"{folder}/{rel}"
        if target.is_file() and sha256_file(target) == expected:
            result.skipped.append(rel)
            continue
        if base_url:
            url = _mirror_url(base_url, folder, rel)
        elif f.get("url"):
            url = f["url"]
        else:
            unstageable.append(f)
            continue
        _download(url, target, expected, f.get("size"), label, timeout, progress)
        result.downloaded.append(rel)
    if unstageable:
        lines = "\n".join(
            f"  {folder}/{f['path']} (sha256 {f['sha256']}): {f['derived']}; from {f.get('source', '?')}"
            for f in unstageable
        )
        raise NeedsStaging(
            f"{folder}: {len(unstageable)} file(s) have no byte-identical upstream URL because they were "
            f"derived from {entry['repo']}@{entry['commit'][:7]}:\n{lines}\n"
            f"Fetch them from a mirror laid out like the data dir (`biascard data fetch {name} --base-url URL` "
            f"or {MIRROR_ENV}=URL), or stage them by hand into {out_dir} as described in {README_HINT}. "
            f"Fetched {len(result.downloaded)}, already present {len(result.skipped)}."
        )
    return result


# CLI (`biascard data fetch`), wired by biascard/cli.py.


def add_fetch_arguments(p) -> None:
    p.description = "Download datasets at their pinned commit, verified by sha256 (see data/README.md)."
    p.add_argument("names", nargs="+", help="dataset adapter or folder names (e.g. babe, ukraine, logic), or 'all'")
    p.add_argument("--dest", default=None, help="root to fetch into (default: the data dir, BIASCARD_DATA_DIR)")
    p.add_argument(
        "--base-url", default=None, help=f"mirror laid out like the data dir: <URL>/<folder>/<file> (or {MIRROR_ENV})"
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per connection attempt (default 60)")


def run_fetch(args) -> int:
    manifest = load_manifest()
    names = list(manifest["datasets"]) if "all" in args.names else list(dict.fromkeys(args.names))
    # Resolve every name before downloading anything, so a typo costs no download.
    folders = {}
    for n in names:
        folders.setdefault(resolve(n, manifest), n)
    for folder in list(folders):
        # e.g. MBIC's split is rebuilt from BABE's file, so MBIC is useless without it.
        for dep in manifest["datasets"][folder].get("needs", []):
            if dep not in folders:
                print(f"{folder} also needs {dep}; fetching it too")
                folders[dep] = dep
    pending = []
    for folder, n in folders.items():
        try:
            r = fetch(n, dest=args.dest, base_url=args.base_url, timeout=args.timeout)
        except NeedsStaging as e:
            pending.append(str(e))  # other datasets can still be fetched
            continue
        print(f"{folder}: {len(r.downloaded)} downloaded, {len(r.skipped)} already present, in {r.folder}")
    if pending:
        raise DataError("\n".join(pending))
    return 0
