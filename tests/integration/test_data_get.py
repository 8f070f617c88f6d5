"""`orch data get imdb` through the real CLI against a local HTTP server (CI has no
internet): a small archive with the aclImdb v1 layout, built here, stands for the release.
Full download, resume after a dropped connection and across runs, a bad checksum and an
unsafe archive refused, and the IMDB experiments reading the result as shipped."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import tarfile
import threading
from pathlib import Path
from typing import Dict, List, Optional

import pytest

pytestmark = pytest.mark.integration

REVIEWS = {
    "train/neg": [(0, 3, "Dull.<br /><br />Really dull."), (1, 1, "Awful film"), (10, 2, "No.")],
    "train/pos": [(0, 9, "Great fun — a café scene!"), (2, 10, "Loved it"), (1, 7, "Good \x10 enough")],
    "test/neg": [(0, 2, "Bad acting"), (1, 4, "Meh.")],
    "test/pos": [(0, 8, "Wonderful"), (1, 10, "Brilliant"), (2, 7, "Nice")],
    "train/unsup": [(0, 0, "Watched it on Tuesday."), (1, 0, "My cousin liked it.")],
}


def build_archive(path: Path, extra: Optional[List[tarfile.TarInfo]] = None) -> bytes:
    """A gzipped tar with the release's layout and file names (<n>_<rating>.txt)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:

        def add(name: str, data: Optional[bytes] = None) -> None:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

        add("aclImdb")
        add("aclImdb/README", b"Large Movie Review Dataset v1.0 (test stand-in)\n")
        add("aclImdb/imdb.vocab", b"the\nand\n")
        for folder in ("train", "test"):
            add(f"aclImdb/{folder}")
            add(f"aclImdb/{folder}/labeledBow.feat", b"0 0:1\n")
            for label in ("neg", "pos"):
                add(f"aclImdb/{folder}/urls_{label}.txt", b"http://www.imdb.com/title/tt0000000/usercomments\n")
        for key, rows in REVIEWS.items():
            add(f"aclImdb/{key}")
            for number, rating, text in rows:
                add(f"aclImdb/{key}/{number}_{rating}.txt", text.encode("utf-8"))
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    data = buf.getvalue()
    path.write_bytes(data)
    return data


class Server:
    """http.server on 127.0.0.1 that honours Range requests and can cut a response short."""

    def __init__(self, files: Dict[str, bytes]):
        self.files = files
        self.requests: List[Dict[str, str]] = []
        self.cut_next_after: Optional[int] = None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests.append({"path": self.path, "range": self.headers.get("Range", "")})
                data = outer.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range", "")
                if rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_next_after is not None:
                    body, outer.cut_next_after = body[: outer.cut_next_after], None
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection drops mid-file
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def archive_server(tmp_path):
    data = build_archive(tmp_path / "aclImdb_v1.tar.gz")
    server = Server({"/aclImdb_v1.tar.gz": data})
    server.data, server.sha256 = data, hashlib.sha256(data).hexdigest()
    try:
        yield server
    finally:
        server.close()


def read_jsonl_gz(path: Path) -> List[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def get(p, server, *extra):
    return p.orch("data", "get", "imdb", "--url", server.url + "/aclImdb_v1.tar.gz", *extra)


def test_get_downloads_verifies_and_writes_the_three_splits(ssh_project, archive_server):
    p, server = ssh_project, archive_server
    proc = get(p, server, "--sha256", server.sha256)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        "data/imdb/train.jsonl.gz  6 reviews",
        "data/imdb/test.jsonl.gz  5 reviews",
        "data/imdb/unsup.jsonl.gz  2 reviews",
    ]
    assert "sha256 ok" in proc.stderr and "Traceback" not in proc.stderr
    out = p.root / "data" / "imdb"
    train = read_jsonl_gz(out / "train.jsonl.gz")
    # neg before pos, by review number; the text as in the file (markup and all)
    assert [r["id"] for r in train] == [
        "train/neg/0_3",
        "train/neg/1_1",
        "train/neg/10_2",
        "train/pos/0_9",
        "train/pos/1_7",
        "train/pos/2_10",
    ]
    assert train[0] == {"id": "train/neg/0_3", "text": "Dull.<br /><br />Really dull.", "label": 0, "rating": 3}
    assert train[3]["text"] == "Great fun — a café scene!" and train[3]["label"] == 1
    raw = gzip.open(out / "train.jsonl.gz").read().decode("utf-8")
    assert "café" in raw and "\\u0010" in raw  # as the shared files: UTF-8 kept, control characters escaped
    assert [r["id"] for r in read_jsonl_gz(out / "test.jsonl.gz")] == [
        "test/neg/0_2",
        "test/neg/1_4",
        "test/pos/0_8",
        "test/pos/1_10",
        "test/pos/2_7",
    ]
    assert read_jsonl_gz(out / "unsup.jsonl.gz") == [
        {"id": "train/unsup/0_0", "text": "Watched it on Tuesday."},
        {"id": "train/unsup/1_0", "text": "My cousin liked it."},
    ]
    source = json.loads((out / "SOURCE.json").read_text())
    assert source["sha256"] == server.sha256 and source["counts"] == {"train": 6, "test": 5, "unsup": 2}
    assert (p.root / "data" / "downloads" / "aclImdb_v1.tar.gz").read_bytes() == server.data
    assert not list((p.root / "data").rglob("*.part")) and not list((p.root / "data").rglob("aclImdb"))
    # again: nothing to fetch
    requests = len(server.requests)
    again = get(p, server, "--sha256", server.sha256)
    assert again.returncode == 0 and "up to date" in again.stderr and len(server.requests) == requests


def test_an_interrupted_download_resumes_where_it_stopped(ssh_project, archive_server):
    p, server = ssh_project, archive_server
    half = len(server.data) // 2
    server.cut_next_after = half  # the first response dies half way
    proc = get(p, server, "--sha256", server.sha256)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "download interrupted" in proc.stderr
    assert [r["range"] for r in server.requests] == ["", f"bytes={half}-"]
    assert (p.root / "data" / "downloads" / "aclImdb_v1.tar.gz").read_bytes() == server.data

    # Across runs: a partial file left by an earlier (killed) run is continued, not restarted.
    other = p.root / "data"
    for path in sorted(other.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (p.root / "data" / "downloads").mkdir(parents=True)
    third = len(server.data) // 3
    (p.root / "data" / "downloads" / "aclImdb_v1.tar.gz.part").write_bytes(server.data[:third])
    server.requests.clear()
    proc = get(p, server, "--sha256", server.sha256, "--quiet")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert [r["range"] for r in server.requests] == [f"bytes={third}-"]
    assert len(read_jsonl_gz(p.root / "data" / "imdb" / "test.jsonl.gz")) == 5


def test_a_file_that_is_not_the_release_is_refused(ssh_project, archive_server):
    """No --sha256: the official release's checksum and size are expected."""
    p, server = ssh_project, archive_server
    proc = get(p, server)
    assert proc.returncode == 9, proc.stdout + proc.stderr
    assert "is not the expected file" in proc.stderr and "c40f74a18d3b61f9" in proc.stderr
    assert "refused" in proc.stderr and proc.stdout == ""
    assert not (p.root / "data" / "imdb").exists()
    assert not list((p.root / "data").rglob("*.part")) and not list((p.root / "data").rglob("*.tar.gz"))


def _member(name: str, kind=tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 5 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    "bad, words",
    [
        (_member("aclImdb/../evil.txt"), "points outside the archive's folder"),
        (_member("/tmp/evil.txt"), "points outside the archive's folder"),
        (_member("aclImdb/train/pos/3_8.txt", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
        (_member("aclImdb/train/pos/4_8.txt", tarfile.LNKTYPE, "aclImdb/README"), "is a link"),
        (_member("aclImdb/train/extra.sh"), "unexpected member 'aclImdb/train/extra.sh'"),
    ],
)
def test_an_unsafe_or_unexpected_archive_is_refused_and_nothing_is_written(ssh_project, tmp_path, bad, words):
    p = ssh_project
    data = build_archive(tmp_path / "evil.tar.gz", extra=[bad])
    server = Server({"/aclImdb_v1.tar.gz": data})
    try:
        proc = get(p, server, "--sha256", hashlib.sha256(data).hexdigest())
    finally:
        server.close()
    assert proc.returncode == 9, proc.stdout + proc.stderr
    assert words in proc.stderr and "refused, nothing was written" in proc.stderr and "Traceback" not in proc.stderr
    assert not (p.root / "data" / "imdb").exists()
    assert not (p.root / "evil.txt").exists() and not (p.root / "data" / "evil.txt").exists()


def test_the_imdb_experiments_read_the_files_as_shipped_and_test_on_the_test_split(ssh_project, archive_server):
    p, server = ssh_project, archive_server
    missing = p.orch("run", "imdb-scratch-ar", "--host", "local")
    assert missing.returncode == 3 and "data/imdb/train.jsonl.gz does not exist" in missing.stderr
    assert "`orch data get imdb` downloads it" in missing.stderr
    assert get(p, server, "--sha256", server.sha256).returncode == 0

    from orchestrator.config import experiments
    from orchestrator.config.project import Project
    from orchestrator.runs import staging

    for name in ("imdb-scratch-ar", "imdb-scratch-mdlm"):
        exp, _ = experiments.load(Project(p.root), name)
        files = staging.local_data_files(exp, p.root)
        assert {k: v.relative_to(p.root).as_posix() for k, v in files.items()} == {
            "path": "data/imdb/train.jsonl.gz",
            "test_path": "data/imdb/test.jsonl.gz",
            "unlabelled_path": "data/imdb/unsup.jsonl.gz",
        }

    # The shipped recipe, shrunk to seconds on a CPU: pretrain on unsup + train, one job a
    # class, scored on the official test split (every test review, ids test/...).
    tiny = [
        "--set",
        "model.n_layer=1",
        "--set",
        "model.n_embd=32",
        "--set",
        "model.n_head=2",
        "--set",
        "model.max_len=32",
        "--set",
        "model.vocab_size=300",
        "--set",
        "pretrain.epochs=1",
        "--set",
        "pretrain.batch_size=4",
        "--set",
        "train.epochs=1",
        "--set",
        "train.batch_size=2",
        "--set",
        "eval.min_accuracy=0",
    ]
    proc = p.orch(
        "run", "imdb-scratch-ar", "--host", "local", "--name", "imdb-tiny", "--wait", "--json", *tiny, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.loads((p.run_dir("imdb-tiny") / "metrics.json").read_text())
    assert metrics["n"] == 5
    scores = (p.run_dir("imdb-tiny") / "jobs" / "neg" / "scores.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in scores) == [
        "test/neg/0_2",
        "test/neg/1_4",
        "test/pos/0_8",
        "test/pos/1_10",
        "test/pos/2_7",
    ]

    # The benchmark machine's copy of the train and unsup files still works, with a seeded split.
    shared = [
        "--set",
        "data.path=data/imdb/train.jsonl.gz",
        "--set",
        "data.test_path=",
        "--set",
        "data.unlabelled_path=data/imdb/unsup.jsonl.gz",
    ]
    exp, _ = experiments.load(Project(p.root), "imdb-scratch-ar", [s for s in shared if s != "--set"])
    assert exp.data.test_path == "" and 0 < exp.data.test_fraction < 1
