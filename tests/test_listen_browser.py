"""The MUSHRA page in a real browser: Debian's Chromium, driven through Selenium and /usr/bin/chromedriver, against
the real server (uvicorn in a thread) on a two-trial test that the test builds from synthetic clips.

`HSMAD_LISTEN_SCREENSHOT=figures/listening_page.png pytest tests/test_listen_browser.py` also saves the page with
the first trial rated (the committed screenshot)."""
import json, os, sqlite3, time, urllib.error, urllib.request
from pathlib import Path
import pytest

CHROMIUM, CHROMEDRIVER = '/usr/bin/chromium', '/usr/bin/chromedriver'
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f'{CHROMIUM} is absent: `make sysdeps` installs Debian chromium and chromium-driver')
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required', '--window-size=1200,860']


SR, SECONDS, F0, SWEEP = 22050, 3.0, 300.0, 600.0   # clips are chirps: frequency F0 + SWEEP * t tells the position t


def chirps(folder, noise):
    "Two clips whose pitch rises linearly with time (all below the 3.5 kHz anchor), plus some noise."
    import numpy as np, soundfile as sf
    folder.mkdir()
    t = np.arange(int(SR * SECONDS)) / SR
    for i, name in enumerate(['clip01', 'clip02']):
        y = 0.3 * np.sin(2 * np.pi * (F0 * t + SWEEP * t ** 2 / 2)) + noise * np.random.default_rng(i).standard_normal(len(t))
        sf.write(str(folder / f'{name}.wav'), y.astype(np.float32), SR)
    return folder


@pytest.fixture(scope='module')
def test_dir(tmp_path_factory):
    from hsmad.eval.mushra import build_test
    tmp = tmp_path_factory.mktemp('listen')
    systems = [('HS-MAD', chirps(tmp / 'hs', 0.01)), ('Baseline-Global', chirps(tmp / 'bg', 0.05))]
    build_test(tmp / 'test', ('gt', chirps(tmp / 'gt', 0.0)), systems, seed=1, sample_rate=SR)
    return tmp / 'test'


@pytest.fixture(scope='module')
def server(test_dir):
    from hsmad.eval.listen import make_app, serving
    db = test_dir.parent / 'ratings.sqlite'
    with serving(make_app(test_dir, db)) as url: yield url, db


@pytest.fixture(scope='module')
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions(); opts.binary_location = CHROMIUM
    for f in FLAGS + [f'--user-data-dir={tmp_path_factory.mktemp("chromium-profile")}']: opts.add_argument(f)
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def wait_for(cond, what, timeout=15.0):
    t = time.time()
    while time.time() - t < timeout:
        v = cond()
        if v: return v
        time.sleep(0.05)
    raise AssertionError(f'timed out after {timeout:g} s waiting for {what}')


def js(d, script, *args): return d.execute_script(script, *args)


def open_trial(d, url, participant, expect):
    d.get(f'{url}/?participant={participant}')
    wait_for(lambda: js(d, 'return !!(window.mushra && window.mushra.ready())'), 'the trial audio to decode')
    assert d.find_element('id', 'progress-text').text == expect


def heard(d):
    "(position of the loop the audio output carries, read off the chirp's frequency; the position the page reports)."
    f, pos, rate, n = js(d, """const an = window.tap, bins = new Float32Array(an.frequencyBinCount);
        an.getFloatFrequencyData(bins);
        let k = 0; for (let i = 1; i < bins.length; i++) if (bins[i] > bins[k]) k = i;
        return [k * an.context.sampleRate / an.fftSize, window.mushra.position(), an.context.sampleRate, an.fftSize];""")
    return (f - F0) / SWEEP + n / rate / 2, pos      # the analyser sees the last fftSize samples: centred half a window back


def set_ratings(d, values):
    "Move the sliders the way an input does (value + an 'input' event); keys are the page's letters."
    js(d, """for (const [k, v] of Object.entries(arguments[0])) {
               const s = document.getElementById('rate-' + k); s.value = v; s.dispatchEvent(new Event('input', {bubbles: true})); }""", values)


def stored(db, participant):
    "{trial_position: {condition: rating}} and the stored order of `participant`."
    with sqlite3.connect(db) as c:
        rows = c.execute('SELECT trial_position, condition, rating FROM ratings WHERE participant = ?', (participant,)).fetchall()
        order = c.execute('SELECT trial_order FROM participants WHERE participant = ?', (participant,)).fetchone()
    out = {}
    for pos, cond, r in rows: out.setdefault(pos, {})[cond] = r
    return out, (json.loads(order[0]) if order else None)


def post(url, body):
    req = urllib.request.Request(url + '/api/rate', json.dumps(body).encode(), {'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(req) as r: return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e: return e.code, json.loads(e.read())


def test_participant_completes_two_trials(server, browser):
    from selenium.webdriver.common.keys import Keys
    url, db = server
    d = browser
    open_trial(d, url, 'L01', 'Trial 1 of 2')
    keys = js(d, "return [...document.querySelectorAll('#conditions input')].map(s => s.id.slice(5))")
    assert keys == list('ABCDE')

    # switching stimuli keeps the position in the loop (one Web Audio clock), it does not restart the clip:
    # what the output carries (an analyser on the page's output bus) is where the page says it is
    js(d, 'const out = window.mushra.output(), an = out.context.createAnalyser(); '
          'an.fftSize = 4096; an.smoothingTimeConstant = 0; out.connect(an); window.tap = an;')
    d.find_element('id', 'play-ref').click(); time.sleep(0.35)
    before = js(d, 'return window.mushra.position()')
    d.find_element('id', 'play-C').click(); time.sleep(0.15)
    est, after = heard(d)
    assert js(d, 'return window.mushra.playing()') == 'C'
    assert 0.2 < before < after, (before, after)     # a 3 s loop: no wrap in this time
    assert abs(est - after) < 0.08, f'the output is at {est:.3f} s of the loop, the page says {after:.3f} s'

    # "next" stays blocked until some condition is rated 100
    first = {'A': 37, 'B': 64, 'C': 12, 'D': 81, 'E': 55}
    nxt = d.find_element('id', 'next')
    assert not nxt.is_enabled() and d.find_element('id', 'rule').is_displayed()
    set_ratings(d, first)
    assert not nxt.is_enabled()
    js(d, 'arguments[0].click()', nxt)                       # a click on the disabled button does nothing
    time.sleep(0.3)
    assert stored(db, 'L01')[0] == {} and d.find_element('id', 'progress-text').text == 'Trial 1 of 2'
    d.find_element('id', 'rate-B').send_keys(Keys.END)        # the keyboard moves a slider to the top: 100
    first['B'] = 100
    assert d.find_element('id', 'value-B').text == '100' and nxt.is_enabled()
    if os.environ.get('HSMAD_LISTEN_SCREENSHOT'):
        js(d, 'document.activeElement.blur()'); d.save_screenshot(os.environ['HSMAD_LISTEN_SCREENSHOT'])
    nxt.click()
    wait_for(lambda: d.find_element('id', 'progress-text').text == 'Trial 2 of 2', 'the second trial')

    # the first trial is in the database exactly as entered, mapped from letters to conditions by the stored order
    ratings, order = stored(db, 'L01')
    assert ratings == {0: {c: float(first[k]) for k, c in zip('ABCDE', order[0]['conditions'])}}

    # a bad rating is refused by the server, from the page's own context and by a direct request; nothing stored
    status = d.execute_async_script("""const done = arguments[arguments.length - 1];
        fetch('/api/rate', {method: 'POST', headers: {'Content-Type': 'application/json'},
                            body: JSON.stringify({participant: 'L01', position: 1, ratings: {A: 100, B: 150, C: 0, D: 0, E: 0}})})
          .then(r => r.json().then(j => done([r.status, j.error])));""")
    assert status[0] == 400 and 'from 0 to 100' in status[1]
    assert post(url, dict(participant='L01', position=1, ratings=dict(A=100, B='abc', C=0, D=0, E=0)))[0] == 400
    assert post(url, dict(participant='L01', position=0, ratings=dict(A=100, B=1, C=0, D=0, E=0)))[0] == 409   # a replay
    assert stored(db, 'L01')[0].keys() == {0}

    # a reload resumes at the next unrated trial
    open_trial(d, url, 'L01', 'Trial 2 of 2')
    assert js(d, "return [...document.querySelectorAll('#conditions input')].map(s => +s.value)") == [0] * 5
    second = {'A': 100, 'B': 3, 'C': 90, 'D': 46, 'E': 100}
    set_ratings(d, second)
    d.find_element('id', 'next').click()
    wait_for(lambda: d.find_element('id', 'done').is_displayed(), 'the thank-you page')
    assert d.find_element('id', 'progress-text').text == '2 of 2 trials done'
    ratings, order = stored(db, 'L01')
    assert ratings == {p: {c: float(v[k]) for k, c in zip('ABCDE', order[p]['conditions'])} for p, v in enumerate([first, second])}
    d.refresh()
    wait_for(lambda: d.find_element('id', 'done').is_displayed(), 'the thank-you page after a reload')


def test_start_page_refuses_bad_ids(server, browser):
    url, _ = server
    d = browser
    d.get(url + '/')
    field = wait_for(lambda: d.find_element('id', 'participant').is_displayed() and d.find_element('id', 'participant'), 'the start page')
    field.send_keys('no spaces please')
    d.find_element('css selector', '#start-form button').click()
    wait_for(lambda: 'participant id' in d.find_element('id', 'start-message').text, 'the refusal of a bad id')
    assert not d.find_element('id', 'trial').is_displayed()
