# The layering rules of DESIGN §4, checked on the source text: Python's C API only in src/py/, and each
# folder includes only the folders it may use (meson's per-layer dependencies enforce the libraries too).
import os
import re
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# folder -> the gcorn folders its files may #include (besides itself and base/, header-only helpers for all)
ALLOWED = {
    "base": set(),
    "config": set(),
    "log": {"config"},
    "sys": {"config"},
    "master": {"config", "log", "sys"},
    "http": set(),
    "py": set(),
    "wsgi": {"py", "http", "config"},
    "hub": {"py"},
    "hooks": {"py", "config", "log", "sys", "wsgi", "hub"},
    "worker": {"config", "log", "sys", "http", "py", "wsgi", "hub", "hooks"},
}
C_API_CALL = re.compile(r"\b(Py[A-Z][A-Za-z_]*|PyGreenlet_[A-Za-z_]+|_Py[A-Za-z_]+)\s*\(")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/', re.M)


def sources():
    return [p for p in SRC.rglob("*") if p.suffix in (".cpp", ".hpp")]


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def test_python_c_api_only_in_py():
    offenders = []
    for path in sources():
        folder = path.relative_to(SRC).parts[0]
        if folder == "py":
            continue
        for m in C_API_CALL.finditer(strip_comments(path.read_text())):
            offenders.append("%s: %s" % (path.relative_to(SRC), m.group(1)))
    assert offenders == []


def test_python_h_only_in_py():
    offenders = [str(p.relative_to(SRC)) for p in sources()
                 if p.relative_to(SRC).parts[0] != "py" and re.search(r"#\s*include\s*<(Python|greenlet/)", p.read_text())]
    assert offenders == []


def test_include_edges_follow_the_layers():
    offenders = []
    for path in sources():
        parts = path.relative_to(SRC).parts
        if len(parts) < 2:
            continue  # main.cpp composes everything
        folder = parts[0]
        for included in INCLUDE.findall(path.read_text()):
            if included not in (folder, "base") and included not in ALLOWED.get(folder, set()):
                offenders.append("%s includes %s/" % (path.relative_to(SRC), included))
    assert offenders == []


def test_every_folder_is_known():
    folders = {p.name for p in SRC.iterdir() if p.is_dir()}
    assert folders <= set(ALLOWED), folders - set(ALLOWED)


def test_the_seam_between_master_and_worker():
    # DESIGN §4: they meet only in sys/contract.hpp; the master never sees Python, HTTP or the worker.
    assert "master" not in ALLOWED["worker"]
    assert not ALLOWED["master"] & {"py", "hooks", "worker", "wsgi", "http", "hub"}


def layer_root(layer):
    gcorn = Path(os.environ.get("GCORN_BIN") or SRC.parent / "build" / "src" / "gcorn")
    return gcorn.parent / "layers" / layer


@pytest.mark.parametrize("layer, header, compiles", [
    ("master", "sys/contract.hpp", True),
    ("master", "worker/worker.hpp", False),
    ("master", "py/object.hpp", False),
    ("worker", "hooks/hooks.hpp", True),
    ("worker", "master/arbiter.hpp", False),
    ("http", "config/settings.hpp", False),
])
def test_a_forbidden_include_does_not_compile(tmp_path, layer, header, compiles):
    root = layer_root(layer)
    assert root.is_dir(), "no include root for %s at %s (build first)" % (layer, root)
    source = tmp_path / "probe.cpp"
    source.write_text('#include "%s"\n' % header)
    r = subprocess.run(["c++", "-std=c++20", "-fsyntax-only", "-I", str(root), "-I", str(root.parents[2]),
                        "-I", "/usr/include/python3.11", str(source)], capture_output=True, text=True)
    assert (r.returncode == 0) == compiles, r.stderr[-2000:]
