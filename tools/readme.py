"""Write README.md from nbs/index.ipynb (nbdev's `nbdev_readme` needs Quarto, which is not installed here).

Markdown cells are copied; code cells become ```python blocks; cells whose first line is `#| hide` are
skipped. `--check` exits 1 when README.md differs from what it would write.
"""
import json, sys
from pathlib import Path

def render(nb_path: Path) -> str:
    cells = json.loads(nb_path.read_text())['cells']
    out = []
    for c in cells:
        src = ''.join(c['source']).strip('\n')
        if c['cell_type'] == 'markdown': out.append(src)
        elif c['cell_type'] == 'code' and src and not src.startswith('#| hide'):
            out.append('```python\n' + '\n'.join(l for l in src.split('\n') if not l.startswith('#|')) + '\n```')
    return '<!-- generated from nbs/index.ipynb by tools/readme.py; edit the notebook -->\n\n' + '\n\n'.join(out) + '\n'

if __name__ == '__main__':
    root = Path(__file__).resolve().parent.parent
    text = render(root / 'nbs' / 'index.ipynb')
    if '--check' in sys.argv:
        same = (root / 'README.md').exists() and (root / 'README.md').read_text() == text
        print('readme: README.md matches nbs/index.ipynb' if same else 'readme: README.md is stale -- run `make readme`')
        sys.exit(0 if same else 1)
    (root / 'README.md').write_text(text); print('wrote README.md')
