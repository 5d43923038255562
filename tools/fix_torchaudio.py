"""Make `import torchaudio` work beside a torch it was not built for (see ENVIRONMENT.md).

descript-audio-codec needs torchaudio, and the newest torchaudio wheel (2.11) has a C extension
compiled against torch 2.11; beside torch 2.13 it fails to load (`OSError ... _torchaudio.abi3.so`).
torchaudio is designed to run without its extension when the library files are absent
(`torchaudio._extension._load_lib` returns False), and dac/audiotools use only its pure-Python
parts. So, only when the import fails on that library, we remove the mismatched `lib/*.so`.
A matching torch/torchaudio pair (e.g. a CUDA install) is left untouched. Idempotent.
"""
import importlib.util, pathlib, subprocess, sys

def main() -> int:
    spec = importlib.util.find_spec('torchaudio')
    if spec is None: return 0
    probe = subprocess.run([sys.executable, '-c', 'import torchaudio'], capture_output=True, text=True)
    if probe.returncode == 0: return 0
    if 'Could not load this library' not in probe.stderr:
        sys.stderr.write(probe.stderr); return 1
    libdir = pathlib.Path(spec.origin).parent / 'lib'
    for so in libdir.glob('*.so'):
        print(f'fix_torchaudio: removing {so.name} (built for another torch)'); so.unlink()
    return subprocess.run([sys.executable, '-c', 'import torchaudio']).returncode

if __name__ == '__main__': sys.exit(main())
