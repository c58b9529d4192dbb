"""`biascard data fetch` against a real local HTTP server; never the internet."""
from __future__ import annotations

import hashlib
import http.server
import json
import posixpath
import re
import socket
import threading
import urllib.parse
from pathlib import Path

import pytest

from biascard.cli import main
from biascard.data import fetch as fetch_mod
from biascard.data.errors import DataError
from biascard.data.fetch import fetch, load_manifest, resolve

# Staged files that SOURCE.md calls byte copies of an upstream file at the pinned commit.
BYTE_COPIES = {
    "babe/final_labels_SG1.csv",
    "babe/final_labels_SG2.csv",
    "basil/annotation_changes.txt",
    "ukraine_multidim_news_bias/Codebook.md",
    "gvfc/gvfc_extension_multimodal.csv",
    "sdg_trail22/Final_Additional_Data.csv",
    "sdg_trail22/LICENSE.md",
    "sdg_trail22/Test_data.csv",
    "sdg_trail22/Train_data.csv",
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_sums(datasets: Path) -> dict[str, str]:
    sums = {}
    for line in (datasets / "SHA256SUMS").read_text().splitlines():
        digest, rel = line.split(None, 1)
        sums[rel.removeprefix("./")] = digest
    return sums


class Mirror(http.server.ThreadingHTTPServer):
    """Serves a directory; logs every request path; can flip one byte of chosen files."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        self.corrupt: set[str] = set()
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        self.server.requests.append(rel)
        path = (self.server.root / rel).resolve()
        if self.server.root not in path.parents or not path.is_file():
            self.send_error(404)
            return
        data = bytearray(path.read_bytes())
        if rel in self.server.corrupt:
            data[len(data) // 2] ^= 0xFF
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def datasets(shared_dir) -> Path:
    return (shared_dir / "datasets").resolve()


@pytest.fixture(scope="module")
def mirror(datasets):
    server = Mirror(datasets)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _clean(mirror, monkeypatch):
    monkeypatch.delenv("BIASCARD_DATA_MIRROR", raising=False)
    mirror.requests.clear()
    mirror.corrupt.clear()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def no_network(url, timeout):
    raise AssertionError(f"test tried to open {url}")


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.glob(".*.part")] if folder.exists() else []


# --- the manifest -------------------------------------------------------------------------


def test_manifest_hashes_and_sizes_match_sha256sums(datasets):
    manifest = load_manifest()
    sums = read_sums(datasets)
    listed = {}
    for folder, entry in manifest["datasets"].items():
        for f in entry["files"]:
            rel = f"{folder}/{f['path']}"
            listed[rel] = f["sha256"]
            assert f["size"] == (datasets / rel).stat().st_size, rel
    assert listed == sums


def test_manifest_urls_are_pinned_byte_copies_and_the_rest_is_derived():
    manifest = load_manifest()
    with_url = set()
    for folder, entry in manifest["datasets"].items():
        assert re.fullmatch(r"[0-9a-f]{40}", entry["commit"]), folder
        assert entry["license"] and entry["repo"].count("/") == 1, folder
        for f in entry["files"]:
            rel = f"{folder}/{f['path']}"
            assert ("url" in f) != ("derived" in f), f"{rel}: exactly one of url/derived"
            if "url" in f:
                with_url.add(rel)
                assert f["url"] == (
                    f"https://raw.githubusercontent.com/{entry['repo']}/{entry['commit']}/{f['source']}"
                ), rel
            else:
                assert f["derived"].strip(), rel
    assert with_url == BYTE_COPIES
    # Only TRAIL22 may be committed into the project.
    assert [k for k, e in manifest["datasets"].items() if e["redistributable"]] == ["sdg_trail22"]


def test_adapter_names_resolve_to_folders():
    assert resolve("ukraine") == "ukraine_multidim_news_bias"
    assert resolve("logic") == "logic_fallacy_jin2022"
    assert resolve("allsides") == "article_bias_prediction_allsides"
    assert resolve("mbic") == "mbic"
    assert resolve("gvfc") == "gvfc"
    assert resolve("basil") == "basil"
    with pytest.raises(DataError, match=r"unknown dataset 'nope'.*babe"):
        resolve("nope")
    with pytest.raises(DataError, match="nothing to fetch"):
        resolve("cards")


def test_every_registered_adapter_maps_to_its_folder():
    from biascard.data.adapters import ADAPTERS

    manifest = load_manifest()
    for name, adapter in ADAPTERS.items():
        if name == "cards":  # the user's own card data: nothing upstream to fetch
            continue
        folder = resolve(name)
        assert folder == adapter.folder, name
        listed = {f"{k}/{f['path']}" for k, e in manifest["datasets"].items() for f in e["files"]}
        read = {posixpath.normpath(f"{folder}/{f}") for f in adapter.files}
        assert read <= listed, name
        # Files in another folder (MBIC reads BABE's) must come along with `needs`.
        others = {r.split("/")[0] for r in read} - {folder}
        assert others <= set(manifest["datasets"][folder].get("needs", [])), name


# --- fetching from a mirror ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["gvfc", "logic", "babe"])
def test_fetch_from_mirror_reproduces_the_staged_files(name, mirror, datasets, tmp_path):
    result = fetch(name, dest=tmp_path, base_url=mirror.url)
    folder = resolve(name)
    expected = {f["path"] for f in load_manifest()["datasets"][folder]["files"]}
    assert set(result.downloaded) == expected and result.skipped == []
    assert result.folder == tmp_path / folder
    got = {p.name for p in (tmp_path / folder).iterdir()}
    assert got == expected  # no temp files left beside them
    for rel in expected:
        assert sha256(tmp_path / folder / rel) == sha256(datasets / folder / rel), rel
    assert sorted(mirror.requests) == sorted(f"{folder}/{rel}" for rel in expected)


def test_refetch_skips_files_already_present(mirror, tmp_path):
    fetch("gvfc", dest=tmp_path, base_url=mirror.url)
    mirror.requests.clear()
    again = fetch("gvfc", dest=tmp_path, base_url=mirror.url)
    assert again.downloaded == [] and len(again.skipped) == 2
    assert mirror.requests == []
    (tmp_path / "gvfc" / "gvfc_headlines_annotations.csv").unlink()
    third = fetch("gvfc", dest=tmp_path, base_url=mirror.url)
    assert third.downloaded == ["gvfc_headlines_annotations.csv"]
    assert mirror.requests == ["gvfc/gvfc_headlines_annotations.csv"]


def test_a_present_file_with_the_wrong_hash_is_replaced(mirror, datasets, tmp_path):
    bad = tmp_path / "gvfc" / "gvfc_headlines_annotations.csv"
    bad.parent.mkdir()
    bad.write_text("not the data\n")
    result = fetch("gvfc", dest=tmp_path, base_url=mirror.url)
    assert "gvfc_headlines_annotations.csv" in result.downloaded
    assert sha256(bad) == sha256(datasets / "gvfc" / "gvfc_headlines_annotations.csv")


def test_corrupted_download_is_an_error_naming_file_and_hashes(mirror, datasets, tmp_path):
    rel = "gvfc/gvfc_headlines_annotations.csv"
    mirror.corrupt.add(rel)
    data = bytearray((datasets / rel).read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad_hash = hashlib.sha256(data).hexdigest()
    with pytest.raises(DataError) as info:
        fetch("gvfc", dest=tmp_path, base_url=mirror.url)
    msg = str(info.value)
    assert rel in msg and "sha256 mismatch" in msg
    assert sha256(datasets / rel) in msg and bad_hash in msg
    assert not (tmp_path / rel).exists()
    assert leftovers(tmp_path / "gvfc") == []


def test_missing_file_on_mirror_names_the_http_status(mirror, tmp_path):
    with pytest.raises(DataError, match=r"gvfc/.*HTTP 404"):
        fetch("gvfc", dest=tmp_path, base_url=mirror.url + "/no-such-prefix")
    assert leftovers(tmp_path / "gvfc") == []


def test_mirror_from_environment(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("BIASCARD_DATA_MIRROR", mirror.url + "/")
    result = fetch("mbic", dest=tmp_path)
    assert result.downloaded == ["final_labels_MBIC.csv.gz"]
    assert mirror.requests == ["mbic/final_labels_MBIC.csv.gz"]


def test_default_destination_is_the_data_dir(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("BIASCARD_DATA_DIR", str(tmp_path / "data"))
    result = fetch("ukraine", base_url=mirror.url)
    assert result.folder == tmp_path / "data" / "ukraine_multidim_news_bias"
    assert (result.folder / "sentences_binary_labels.csv").is_file()


def test_unreachable_host_says_no_network(closed_port, tmp_path):
    with pytest.raises(DataError, match=rf"no network: could not reach 127\.0\.0\.1:{closed_port}"):
        fetch("gvfc", dest=tmp_path, base_url=f"http://127.0.0.1:{closed_port}", timeout=5)
    assert leftovers(tmp_path / "gvfc") == []
    assert not (tmp_path / "gvfc" / "gvfc_extension_multimodal.csv").exists()


# --- without a mirror: upstream URLs, derived files ----------------------------------------


def staged_upstream(datasets: Path, opened: list[str]):
    """A stand-in for the network: each pinned upstream URL answers with the staged copy."""
    by_url = {
        f["url"]: datasets / folder / f["path"]
        for folder, e in load_manifest()["datasets"].items()
        for f in e["files"]
        if "url" in f
    }

    def fake_open(url, timeout):
        opened.append(url)
        return open(by_url[url], "rb")

    return fake_open


def test_without_mirror_byte_copies_come_from_the_pinned_upstream_url(datasets, tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr(fetch_mod, "_open", staged_upstream(datasets, opened))
    result = fetch("sdg_trail22", dest=tmp_path)
    assert len(result.downloaded) == 4
    commit = "21321389ba20865fa11ab0832a3a5f547912828c"
    assert len(opened) == 4
    assert all(u.startswith(f"https://raw.githubusercontent.com/DelinteNicolas/TRAIL22-SDG/{commit}/data/") for u in opened)


@pytest.mark.parametrize("name", ["logic", "mbic", "allsides"])
def test_derived_files_without_mirror_explain_how_to_stage(name, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch_mod, "_open", no_network)
    with pytest.raises(DataError) as info:
        fetch(name, dest=tmp_path)
    msg = str(info.value)
    assert "derived" in msg and "data/README.md" in msg and "--base-url" in msg
    first = load_manifest()["datasets"][resolve(name)]["files"][0]["path"]
    assert first in msg


def test_derived_files_already_staged_need_no_mirror(mirror, tmp_path, monkeypatch):
    fetch("logic", dest=tmp_path, base_url=mirror.url)
    monkeypatch.setattr(fetch_mod, "_open", no_network)
    result = fetch("logic", dest=tmp_path)
    assert result.downloaded == [] and len(result.skipped) == 12


# --- the CLI ------------------------------------------------------------------------------


def test_cli_fetch_against_local_mirror(mirror, tmp_path, capsys):
    rc = main(["data", "fetch", "gvfc", "logic_fallacy_jin2022", "--dest", str(tmp_path), "--base-url", mirror.url])
    assert rc == 0
    out = capsys.readouterr().out
    assert "gvfc: 2 downloaded" in out and "logic_fallacy_jin2022: 12 downloaded" in out
    assert (tmp_path / "logic_fallacy_jin2022" / "edu_test.csv").is_file()


def test_cli_unreachable_exits_2_with_one_line(closed_port, tmp_path, capsys):
    rc = main(["data", "fetch", "babe", "--dest", str(tmp_path), "--base-url", f"http://127.0.0.1:{closed_port}", "--timeout", "5"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "no network" in err and "Traceback" not in err


def test_cli_fetches_what_a_dataset_needs(mirror, tmp_path, capsys):
    rc = main(["data", "fetch", "mbic", "--dest", str(tmp_path), "--base-url", mirror.url])
    assert rc == 0
    assert "mbic also needs babe" in capsys.readouterr().out
    assert (tmp_path / "babe" / "final_labels_SG2.csv").is_file()
    assert (tmp_path / "mbic" / "final_labels_MBIC.csv.gz").is_file()


def test_cli_unknown_name_fetches_nothing(mirror, tmp_path, capsys):
    rc = main(["data", "fetch", "gvfc", "bogus", "--dest", str(tmp_path), "--base-url", mirror.url])
    assert rc == 2
    assert "unknown dataset 'bogus'" in capsys.readouterr().err
    assert mirror.requests == []


def test_cli_derived_error_still_fetches_other_datasets(datasets, tmp_path, capsys, monkeypatch):
    opened = []
    monkeypatch.setattr(fetch_mod, "_open", staged_upstream(datasets, opened))
    rc = main(["data", "fetch", "mbic", "sdg_trail22", "--dest", str(tmp_path)])
    assert rc == 2
    captured = capsys.readouterr()
    assert "mbic/final_labels_MBIC.csv.gz" in captured.err and "stage them by hand" in captured.err
    assert "babe/raw_labels_SG2.csv.gz" in captured.err
    assert "sdg_trail22: 4 downloaded" in captured.out
    # BABE's byte copies (which MBIC's split needs) still arrived from upstream.
    assert (tmp_path / "babe" / "final_labels_SG2.csv").is_file()
    assert not (tmp_path / "mbic").exists() or not any((tmp_path / "mbic").iterdir())


def test_manifest_is_valid_json_with_all_folders():
    data = json.loads(fetch_mod.MANIFEST.read_text())
    assert set(data["datasets"]) == {
        "babe", "mbic", "basil", "ukraine_multidim_news_bias", "gvfc",
        "logic_fallacy_jin2022", "article_bias_prediction_allsides", "sdg_trail22",
    }


def test_silent_server_times_out_as_no_network(tmp_path):
    # Accepts connections (kernel backlog) but never answers.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        port = s.getsockname()[1]
        with pytest.raises(DataError, match=rf"no network: could not reach 127\.0\.0\.1:{port} \(timed out\)"):
            fetch("gvfc", dest=tmp_path, base_url=f"http://127.0.0.1:{port}", timeout=0.5)
    assert leftovers(tmp_path / "gvfc") == []
