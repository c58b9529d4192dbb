"""The model archive: a TorchServe `.mar` (a zip in torch-model-archiver 0.12's layout).

Layout (flat, like `torch-model-archiver --archive-format default`):
  MAR-INF/MANIFEST.json   createdOn, runtime, model{modelName, serializedFile, handler,
                          modelVersion, configFile}, archiverVersion
  biascard_handler.py     the handler file TorchServe imports; it re-exports
                          biascard.serve.handler.handle (biascard is installed in the venv)
  model-config.yaml       TorchServe worker/batching settings (+ a `handler:` section)
  config.json, model.safetensors, tokenizer files, composer.json (if calibrated)
  SHA256SUMS              sha256 of every other file, `sha256sum` format

Every file is checked against SHA256SUMS on load (our server, the CLI, and the handler
inside TorchServe); a missing, extra or changed file fails with an error naming it.
SHA256SUMS guards against corruption and accidental edits, not against an attacker who
rewrites it too: for that, compare the archive's own sha256 (printed by `biascard archive`)
with `--expect-sha256` / `model_sha256`.
Weights are safetensors only: pickle-based files are refused when packing and loading.
The served modelVersion is always computed from the weights (model_version); MANIFEST's
modelVersion is only a label, so a forged archive cannot keep the version it copies.

A loaded .mar is extracted under $TMPDIR/biascard-archives/<pid>-<random>; the loader removes
it when done, and every extraction first sweeps the copies of processes no longer alive
(left by a SIGKILL or a crash).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import yaml

from biascard.model import model_dir as md
from biascard.model.model_dir import sha256_file, weights_version

log = logging.getLogger(__name__)

MANIFEST = "MAR-INF/MANIFEST.json"
SUMS = "SHA256SUMS"
HANDLER_FILE = "biascard_handler.py"
MODEL_CONFIG = "model-config.yaml"
ARCHIVER_VERSION = "0.12.0"  # the torch-model-archiver format we write
# torch-model-archiver's model-name rule (model_packaging_utils.check_model_name_regex_or_exit)
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$")

HANDLER_SOURCE = '''"""TorchServe entry point of a biascard archive; the code lives in the installed package."""
from biascard.serve.handler import handle  # noqa: F401
'''

DEFAULT_MODEL_CONFIG = {
    "minWorkers": 1,
    "maxWorkers": 1,
    "batchSize": 4,
    "maxBatchDelay": 50,
    "responseTimeout": 120,
    # read by our handler (context.model_yaml_config["handler"])
    "handler": {"max_chars": 100_000},
}


class ArchiveError(md.ModelDirError):
    """A model archive or model dir that cannot be packed or loaded; the message names the file."""


def model_files(directory: Path) -> list[str]:
    """Relative paths of the files a model dir contributes (its own SHA256SUMS excluded:
    the archive writes one over everything)."""
    try:
        md.verify(directory)  # a dir changed after it was written is not packed
        files = md.files(directory)
    except md.ModelDirError as e:
        raise ArchiveError(str(e)) from None
    clash = {MANIFEST, HANDLER_FILE, MODEL_CONFIG}.intersection(files)
    if clash:
        raise ArchiveError(f"{directory}: contains {sorted(clash)}, which the archive writes itself")
    return files


def _refuse_pickles(names, where: str) -> None:
    try:
        md.refuse_pickles(names, where)
    except md.ModelDirError as e:
        raise ArchiveError(str(e)) from None


def write_archive(
    model_dir: str | Path,
    output: str | Path,
    *,
    model_name: str | None = None,
    version: str | None = None,
    model_config: dict | None = None,
) -> dict:
    """Pack `model_dir` into `output` (.mar); return {path, model_name, sha256, files}."""
    model_dir, output = Path(model_dir), Path(output)
    files = model_files(model_dir)
    name = model_name or output.name.split(".")[0]
    if not MODEL_NAME.match(name):
        raise ArchiveError(f"model name {name!r} must match {MODEL_NAME.pattern} (TorchServe's rule)")
    cfg = dict(DEFAULT_MODEL_CONFIG)
    cfg.update(model_config or {})
    weights = sha256_file(model_dir / "model.safetensors")
    manifest = {
        "createdOn": _dt.datetime.now().strftime("%d/%m/%Y %H:%M:%S"),
        "runtime": "python",
        "model": {
            "modelName": name,
            "serializedFile": "model.safetensors",
            "handler": HANDLER_FILE,
            # same default as a served model dir (model_dir.weights_version), so cards match
            "modelVersion": version or "sha256:" + weights[:12],
            "configFile": MODEL_CONFIG,
        },
        "archiverVersion": ARCHIVER_VERSION,
    }
    generated = {
        MANIFEST: json.dumps(manifest, indent=2).encode(),
        HANDLER_FILE: HANDLER_SOURCE.encode(),
        MODEL_CONFIG: yaml.safe_dump(cfg, sort_keys=False).encode(),
    }
    sums = {k: hashlib.sha256(v).hexdigest() for k, v in generated.items()}
    for rel in files:
        sums[rel] = sha256_file(model_dir / rel)
    sums_text = "".join(f"{digest}  {rel}\n" for rel, digest in sorted(sums.items()))

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    # safetensors are already dense; deflate still shrinks the embeddings a little
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for rel, data in generated.items():
            z.writestr(rel, data)
        for rel in files:
            z.write(model_dir / rel, rel)
        z.writestr(SUMS, sums_text)
    tmp.replace(output)
    return {"path": str(output), "model_name": name, "sha256": sha256_file(output), "files": sorted(sums)}


def parse_sums(text: str, where: str) -> dict[str, str]:
    try:
        return md.parse_checksums(text, where)
    except md.ModelDirError as e:
        raise ArchiveError(str(e)) from None


def verify_dir(root: str | Path, *, required: bool = False) -> bool:
    """Check an extracted archive (TorchServe's model_dir) against its SHA256SUMS.

    Returns False when there is no SHA256SUMS and `required` is False (a plain model dir).
    """
    root = Path(root)
    sums_path = root / SUMS
    if not sums_path.is_file():
        if required:
            raise ArchiveError(f"{root}: no {SUMS}; not a biascard archive")
        return False
    sums = parse_sums(sums_path.read_text(encoding="utf-8"), str(root))
    for rel, digest in sums.items():
        path = root / rel
        if not path.is_file():
            raise ArchiveError(f"{root}: {rel} is listed in {SUMS} but missing")
        if sha256_file(path) != digest:
            raise ArchiveError(f"{root}: {rel} does not match its sha256 in {SUMS} (corrupted or tampered)")
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    _refuse_pickles(present, str(root))
    return True


def _safe_member(name: str, where: str) -> str:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or "\\" in name or not name:
        raise ArchiveError(f"{where}: unsafe member path {name!r}")
    return p.as_posix()


def extract_root() -> Path:
    return Path(tempfile.gettempdir()) / "biascard-archives"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_stale(root: Path | None = None) -> list[Path]:
    """Remove extracted archives under `root` whose owning process (the name's pid) is gone."""
    root = root or extract_root()
    removed = []
    if not root.is_dir():
        return removed
    for d in root.iterdir():
        pid, _, _ = d.name.partition("-")
        if d.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    if removed:
        log.info("removed %d stale extracted archive(s) under %s", len(removed), root)
    return removed


def new_extract_dir() -> Path:
    root = extract_root()
    root.mkdir(parents=True, exist_ok=True)
    sweep_stale(root)
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))  # mode 0700


def model_version(model_dir: str | Path, manifest: dict | None) -> str:
    """The version a model is served under: the weights' own (weights_version). An archive's
    modelVersion that disagrees is ignored, with a warning (custom label or forgery)."""
    version = weights_version(model_dir)
    label = ((manifest or {}).get("model") or {}).get("modelVersion")
    if label and label != version:
        log.warning("%s: MANIFEST modelVersion %r is not the weights' %s; serving as %s",
                    model_dir, label, version, version)
    return version


def read_manifest(path: str | Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read(MANIFEST))


def extract_archive(path: str | Path, dest: str | Path | None = None, *, expect_sha256: str | None = None) -> Path:
    """Verify and extract a .mar; return the extracted model dir.

    Every member is hashed while it is read, and must match SHA256SUMS; members not listed,
    listed files that are absent, unsafe paths and pickle weights are all refused.
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise ArchiveError(f"{where}: no such archive")
    if expect_sha256 and sha256_file(path) != expect_sha256.lower():
        raise ArchiveError(f"{where}: sha256 differs from the expected {expect_sha256}")
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise ArchiveError(f"{where}: not a zip archive ({e})") from None
    with z:
        names = [_safe_member(i.filename, where) for i in z.infolist() if not i.is_dir()]
        _refuse_pickles(names, where)
        if SUMS not in names:
            raise ArchiveError(f"{where}: no {SUMS} inside; not a biascard archive")
        if MANIFEST not in names:
            raise ArchiveError(f"{where}: no {MANIFEST}; not a TorchServe archive")
        sums = parse_sums(z.read(SUMS).decode("utf-8"), where)
        extra = sorted(set(names) - set(sums) - {SUMS})
        if extra:
            raise ArchiveError(f"{where}: {extra[0]} is not listed in {SUMS} (tampered archive?)")
        missing = sorted(set(sums) - set(names))
        if missing:
            raise ArchiveError(f"{where}: {missing[0]} is listed in {SUMS} but missing")
        dest = Path(dest) if dest else new_extract_dir()
        dest.mkdir(parents=True, exist_ok=True)
        try:
            for name in names:
                if name == SUMS:
                    continue
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                h = hashlib.sha256()
                with z.open(name) as src, open(target, "wb") as out:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
                if h.hexdigest() != sums[name]:
                    raise ArchiveError(f"{where}: {name} does not match its sha256 in {SUMS} (corrupted or tampered)")
            (dest / SUMS).write_bytes(z.read(SUMS))
        except zipfile.BadZipFile as e:  # a CRC mismatch: bytes changed inside the zip
            shutil.rmtree(dest, ignore_errors=True)
            raise ArchiveError(f"{where}: damaged or tampered zip ({e})") from None
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
    return dest


def resolve_model(path: str | Path, *, expect_sha256: str | None = None) -> tuple[Path, dict | None, Path | None]:
    """A model dir or a .mar → (model dir, manifest or None, temp dir to delete or None)."""
    path = Path(path)
    if path.is_dir():
        manifest = None
        if (path / MANIFEST).is_file():  # an extracted archive
            verify_dir(path, required=True)
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        else:
            model_files(path)  # refuses pickles, needs config + safetensors
        return path, manifest, None
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise ArchiveError(f"{path}: neither a model directory nor a zip archive (.mar)")
        tmp = extract_archive(path, expect_sha256=expect_sha256)
        manifest = json.loads((tmp / MANIFEST).read_text(encoding="utf-8"))
        return tmp, manifest, tmp
    raise ArchiveError(f"{path}: no such model directory or archive")


def read_model_config(model_dir: Path) -> dict:
    p = Path(model_dir) / MODEL_CONFIG
    if not p.is_file():
        return {}
    data = yaml.safe_load(io.StringIO(p.read_text(encoding="utf-8"))) or {}
    if not isinstance(data, dict):
        raise ArchiveError(f"{p}: expected a mapping")
    return data
