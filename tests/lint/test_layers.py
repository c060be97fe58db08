# The layering rules of DESIGN §4, checked on the source text: Python's C API only in src/py/, and each
# folder includes only the folders it may use (meson's per-layer dependencies enforce the libraries too).
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# folder -> the gcorn folders its files may #include (besides itself)
ALLOWED = {
    "config": set(),
    "log": {"config"},
    "sys": {"config"},
    "master": {"config", "log", "sys"},
    "http": set(),
    "py": set(),
    "wsgi": {"py", "http", "config"},
    "hub": {"py", "http"},
    "hooks": {"py", "config", "master", "sys"},
    "worker": {"config", "log", "sys", "master", "http", "py", "wsgi", "hub", "hooks"},
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
            if included != folder and included not in ALLOWED.get(folder, set()):
                offenders.append("%s includes %s/" % (path.relative_to(SRC), included))
    assert offenders == []


def test_every_folder_is_known():
    folders = {p.name for p in SRC.iterdir() if p.is_dir()}
    assert folders <= set(ALLOWED), folders - set(ALLOWED)
