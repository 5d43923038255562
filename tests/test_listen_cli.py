"""`hsmad listen serve` as a listener's host runs it: in its own process under uvicorn, bound to 127.0.0.1 by default,
stopped with Ctrl-C; a restarted server resumes a participant; `hsmad listen export` then writes the ratings.
(`build` and `export` are one call each, tested in process by nbs/36_eval_listen.)"""
import csv, json, os, socket, subprocess, sys, time, urllib.error, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, 'PYTHONPATH': str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', '')}


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def outward_address():
    "This machine's address on its network (a UDP connect sends nothing), or None without one."
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try: s.connect(('10.255.255.255', 1)); ip = s.getsockname()[0]
        except OSError: return None
    return None if ip.startswith('127.') else ip


def post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=10) as r: return json.loads(r.read())


class Serve:
    "`hsmad listen serve` in a subprocess, stopped with Ctrl-C (SIGINT) as a person would."
    def __init__(self, test_dir, port):
        self.port = port
        self.proc = subprocess.Popen([sys.executable, '-m', 'hsmad.cli', 'listen', 'serve', str(test_dir), '--port', str(port)],
                                     env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.log = []
        t = time.time()
        while time.time() - t < 60:
            line = self.proc.stdout.readline()
            if not line: break
            self.log.append(line)
            if 'Uvicorn running on' in line: return
        self.stop(); raise AssertionError('the server did not start:\n' + ''.join(self.log))

    def stop(self):
        self.proc.send_signal(2)
        out, _ = self.proc.communicate(timeout=20)
        self.log.append(out)
        return self.proc.returncode


def test_build_serve_resume_export(tmp_path):
    from hsmad.cli import main
    from hsmad.eval.mushra import write_clips
    names = ['a1', 'a2', 'a3']
    gt, hs = write_clips(tmp_path / 'gt', names), write_clips(tmp_path / 'hs', names, degrade=0.1)
    assert main(['listen', 'build', '--ref', f'gt={gt}', '--system', f'HS-MAD={hs}', '--trials', '2', '--sample-rate', '22050',
                 '--out', str(tmp_path / 'test')]) == 0

    port = free_port()
    srv = Serve(tmp_path / 'test', port)
    try:
        assert any(f'http://127.0.0.1:{port}' in line for line in srv.log), srv.log     # bound to localhost by default
        ip = outward_address()
        if ip:                                                                             # not reachable on the machine's network address
            with pytest.raises(OSError): socket.create_connection((ip, port), timeout=2)
        url = f'http://127.0.0.1:{port}'
        assert post(url + '/api/start', {'participant': 'L07'})['position'] == 0
        post(url + '/api/rate', {'participant': 'L07', 'position': 0, 'ratings': dict(zip('ABCD', [100, 10, 50, 70]))})
    finally: assert srv.stop() == 0, srv.log

    srv = Serve(tmp_path / 'test', port)                                                   # restarted: nothing lost
    try: assert post(f'http://127.0.0.1:{port}/api/start', {'participant': 'L07'})['position'] == 1
    finally: srv.stop()

    assert main(['listen', 'export', str(tmp_path / 'test'), '--out', str(tmp_path / 'ratings.csv')]) == 0
    rows = list(csv.DictReader(open(tmp_path / 'ratings.csv')))
    assert sorted(float(x['rating']) for x in rows) == [10.0, 50.0, 70.0, 100.0] and {x['participant'] for x in rows} == {'L07'}
