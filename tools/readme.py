"""Write README.md from nbs/index.ipynb (nbdev's `nbdev_readme` needs Quarto, which is not installed here).

- Markdown cells are copied. Relative links are rewritten for the README's place at the repository root
  (`deviations.ipynb` -> `nbs/deviations.ipynb`, `../results/x.md` -> `results/x.md`).
- Code cells become ```python blocks; cells whose first line is `#| hide` are skipped.
- A code cell whose first line is ``# README: output of `COMMAND` `` is run here (with this checkout first on the
  import path) and rendered as a ```text block: `$ COMMAND` and what the cell printed. So `hsmad --help` in the
  README is always the help of this checkout.

`--check` exits 1 when README.md differs from what it would write.
"""
from __future__ import annotations

import contextlib, io, json, posixpath, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = re.compile(r'^# README: output of `(.+)`$')
LINK = re.compile(r'(\]\()([^)\s]+)(\))')


def relink(md: str, nb_dir: str = 'nbs') -> str:
    "Relative link targets of a notebook in `nb_dir`, rewritten relative to the repository root."
    def fix(m):
        target = m.group(2)
        if re.match(r'^(?:[a-z][a-z0-9+.-]*:|#|/)', target): return m.group(0)  # URL, anchor, absolute
        return m.group(1) + posixpath.normpath(posixpath.join(nb_dir, target)) + m.group(3)
    return LINK.sub(fix, md)


def run_cell(src: str) -> str:
    "What a cell prints, run in a fresh namespace with this checkout's package first on the path."
    sys.path.insert(0, str(ROOT))
    try:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf): exec(compile(src, '<index.ipynb>', 'exec'), {'__name__': '__readme__'})
        return buf.getvalue().rstrip('\n')
    finally: sys.path.remove(str(ROOT))


def render(nb_path: Path) -> str:
    cells = json.loads(nb_path.read_text(encoding='utf-8'))['cells']
    out = []
    for c in cells:
        src = ''.join(c['source']).strip('\n')
        if c['cell_type'] == 'markdown': out.append(relink(src))
        elif c['cell_type'] == 'code' and src and not src.startswith('#| hide'):
            first, _, rest = src.partition('\n')
            if m := OUTPUT.match(first):
                out.append(f'```text\n$ {m.group(1)}\n{run_cell(rest)}\n```')
            else:
                out.append('```python\n' + '\n'.join(l for l in src.split('\n') if not l.startswith('#|')) + '\n```')
    return '<!-- generated from nbs/index.ipynb by tools/readme.py; edit the notebook -->\n\n' + '\n\n'.join(out) + '\n'


if __name__ == '__main__':
    text = render(ROOT / 'nbs' / 'index.ipynb')
    readme = ROOT / 'README.md'
    if '--check' in sys.argv:
        same = readme.exists() and readme.read_text(encoding='utf-8') == text
        print('readme: README.md matches nbs/index.ipynb' if same else
              'readme: README.md is stale -- run `python tools/readme.py` (or `make export`) and commit it')
        sys.exit(0 if same else 1)
    readme.write_text(text, encoding='utf-8'); print('wrote README.md')
