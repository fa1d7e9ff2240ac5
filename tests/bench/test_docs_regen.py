"""docs/scaling: every generated table is what launch/regen_docs.py makes from the committed raw
data with the current code, every figure draws what the current code draws from those records (its
data, and its pixels under the same matplotlib), and every other table sits in a folder marked archived."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from firecaffe.insight.bench import model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def regen():
    spec = importlib.util.spec_from_file_location("regen_docs", REPO / "launch" / "regen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_are_what_the_current_code_makes_of_the_committed_data():
    done = subprocess.run([sys.executable, "launch/regen_docs.py", "--check"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, (f"{done.stdout}{done.stderr}\nrun `python launch/regen_docs.py` and bring the "
                                  "text of docs/scaling.md that quotes these numbers in line")


def test_a_formula_that_moves_a_published_number_is_caught(regen, monkeypatch, tmp_path):
    path = "docs/scaling/fit.txt"
    kind, args = regen.GENERATED[path]
    monkeypatch.chdir(REPO)
    assert regen.same(path, (REPO / path).read_text(), regen.generate(path, kind, args, tmp_path))
    predict = model.predict
    monkeypatch.setattr(model, "predict", lambda *a, **k: 1.05 * predict(*a, **k))
    assert not regen.same(path, (REPO / path).read_text(), regen.generate(path, kind, args, tmp_path))


def test_every_table_under_docs_scaling_is_generated_or_archived_with_its_commit(regen):
    archived = {REPO / folder: commit for folder, commit in regen.ARCHIVED.items()}
    for folder, commit in archived.items():
        note = (folder / "ARCHIVED.md").read_text()
        assert re.search(rf"\bcommits? {commit}\b", note), f"{folder}/ARCHIVED.md does not name {commit}"
        assert subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=REPO).returncode == 0
    generated = {REPO / path for path in regen.GENERATED}
    for path in (REPO / "docs" / "scaling").rglob("*"):
        if path.suffix in (".md", ".txt") or path.name == "profile.json":
            assert path in generated or any(folder in path.parents for folder in archived), (
                f"{path.relative_to(REPO)}: neither made by launch/regen_docs.py nor in an archived folder")


def test_the_blocks_of_the_docs_are_marked(regen):
    from launch.doc_blocks import BLOCKS
    texts = [(REPO / doc).read_text() for doc in regen.DOCS]
    assert sorted(name for text in texts for name in re.findall(r"<!-- regen_docs\.py (\S+) -->", text)) == sorted(BLOCKS)
    assert sum(text.count("<!-- /regen_docs.py -->") for text in texts) == len(BLOCKS)


sys.path.insert(0, str(REPO / "launch"))
from doc_figures_archive import hand_typed_figures  # noqa: E402

PAGES = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md")) + ["README.md"]


@pytest.mark.parametrize("page", PAGES)
def test_every_figure_of_the_docs_is_generated_or_archived_with_its_commit(page):
    text = (REPO / page).read_text()
    assert hand_typed_figures(text) == [], (
        f"{page}: figures typed by hand: generate them (launch/doc_prose*.py) or archive them with the commit "
        f"that produced them (python launch/doc_figures_archive.py --mark {page})")
    for commits in re.findall(r"<!-- archived ([0-9a-f ]+) -->", text):
        for commit in commits.split():
            assert subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=REPO).returncode == 0, commit
    assert text.count("<!-- archived ") == text.count("<!-- /archived -->")


def test_a_hand_typed_figure_is_found():
    assert hand_typed_figures("the ring took 2541-2544 ms, 1.04x of the floor") == [
        ("the ring took 2541-2544 ms, 1.04x of the floor", ["2541-2544 ms", "1.04x"])]
    assert hand_typed_figures("<!-- archived abc123 -->\n3.5 ms\n<!-- /archived -->\n`--latency 2us`") == []
    assert hand_typed_figures("```\n$ time x\nreal 1.5s\n```\n") == []             # a fenced transcript is code
    assert hand_typed_figures("a table | 1.5x |\n<!-- archived abc123 -->\n2.5x\n<!-- /archived -->") == [
        ("a table | 1.5x |", ["1.5x"])]


def test_a_figure_drawn_from_other_numbers_is_caught(regen, monkeypatch, tmp_path):
    path = "docs/scaling/cluster/nets/firecaffe_nets.png"
    kind, args = regen.FIGURES[path]
    monkeypatch.chdir(REPO)
    assert regen.figure_differs(REPO / path, regen.generate(path, kind, args, tmp_path, figure=True)) is None
    predict = model.predict
    monkeypatch.setattr(model, "predict", lambda *a, **k: 1.05 * predict(*a, **k))     # its dashed model lines
    assert "other data" in regen.figure_differs(REPO / path, regen.generate(path, kind, args, tmp_path, figure=True))


def test_a_figure_with_other_pixels_or_no_data_is_caught(regen, tmp_path):
    from PIL import Image, PngImagePlugin
    committed = REPO / "docs/scaling/cluster/1G/scaling.png"
    with Image.open(committed) as image:
        info = PngImagePlugin.PngInfo()
        for key, value in image.text.items():
            info.add_text(key, value)
        pixels = image.convert("RGBA")
        pixels.putpixel((5, 5), (0, 0, 0, 255))
        pixels.save(tmp_path / "touched.png", pnginfo=info)
        image.convert("RGBA").save(tmp_path / "bare.png")
    assert regen.figure_differs(tmp_path / "touched.png", committed) == "other pixels, same data and matplotlib"
    assert "carries no data" in regen.figure_differs(tmp_path / "bare.png", committed)


def test_a_formula_that_moves_a_quoted_figure_is_caught(regen, monkeypatch):
    from launch.doc_blocks import BLOCKS
    monkeypatch.chdir(REPO)
    before = BLOCKS["sweep-targets"]({})
    predict = model.predict
    # more time per rank: the growth from 2 to 8 ranks that the prose quotes changes
    monkeypatch.setattr(model, "predict", lambda comm, n, p, *a, **k: (1 + 0.05 * p) * predict(comm, n, p, *a, **k))
    assert BLOCKS["sweep-targets"]({}) != before
