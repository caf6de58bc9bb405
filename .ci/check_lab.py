#!/usr/bin/env python
"""Open a notebook in JupyterLab in headless Chromium, run all its cells and check its ipywidgets browser.

Usage: python .ci/check_lab.py [NOTEBOOK] [--screenshots DIR] [--timeout SECONDS]
       (NOTEBOOK defaults to nbs/03_explore.ipynb)

Starts JupyterLab on 127.0.0.1 with a token and throwaway settings (autosave off, so the notebook
under test is never rewritten; news and update checks off), waits for the kernel to be idle,
runs all cells and fails, with a clear message, when:
- a cell raises an error;
- the widget browser (`.saltseg-browser`, else the notebook's first slider) is not rendered as a
  live widget (a plain-text `PatchBrowser(...)` or "Loading widget..." is a failure);
- pressing ArrowRight on its focused slider does not change the shown image;
- any request leaves 127.0.0.1 (all are blocked and counted: Lab must work offline).
Saves a screenshot of the notebook at the widget, stops the kernel and the server it started.
Needs Playwright (pip) and Debian's Chromium at /usr/bin/chromium (or $CHROMIUM).
"""
import argparse, json, os, secrets, signal, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path
from urllib.parse import urlparse, quote

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync']
SETTINGS = {  # JupyterLab user settings for the run, one file per plugin
    '@jupyterlab/docmanager-extension/plugin.jupyterlab-settings': {'autosave': False},
    '@jupyterlab/apputils-extension/notification.jupyterlab-settings': {'fetchNews': 'false', 'checkForUpdates': False},
}


class Failure(Exception): pass


def check_tools():
    "Exit with a clear message when Playwright or Chromium is missing."
    try: import playwright.sync_api  # noqa: F401
    except ImportError: sys.exit('check_lab: needs Playwright: pip install playwright (its browser download is not needed)')
    chromium = os.environ.get('CHROMIUM', '/usr/bin/chromium')
    if not Path(chromium).exists(): sys.exit(f'check_lab: no Chromium at {chromium}: apt-get install -y chromium (or set $CHROMIUM)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_lab(root: Path, scratch: Path, port: int, token: str) -> subprocess.Popen:
    "Start JupyterLab serving `root` with settings, config, data and runtime folders in `scratch`."
    for name, values in SETTINGS.items():
        path = scratch/'settings'/name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {k: v for k, v in os.environ.items() if k != 'MPLBACKEND'}  # the kernel inherits this: use the inline backend
    env.update(JUPYTERLAB_SETTINGS_DIR=str(scratch/'settings'), JUPYTERLAB_WORKSPACES_DIR=str(scratch/'workspaces'),
               JUPYTER_CONFIG_DIR=str(scratch/'config'), JUPYTER_DATA_DIR=str(scratch/'data'), JUPYTER_RUNTIME_DIR=str(scratch/'runtime'))
    command = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--allow-root', '--ip=127.0.0.1', f'--port={port}',
               '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={root}',
               '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate', '--LabApp.news_url=']
    log = open(scratch/'lab.log', 'w')
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)


def api(base: str, token: str, path: str, method: str = 'GET'):
    request = urllib.request.Request(f'{base}{path}', method=method, headers={'Authorization': f'token {token}'})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
        return json.loads(body) if body else None


def wait_for_server(server: subprocess.Popen, base: str, token: str, scratch: Path, timeout: float = 120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None: raise Failure(f'JupyterLab exited with code {server.returncode}:\n' + (scratch/'lab.log').read_text()[-3000:])
        try: return api(base, token, 'api/status')
        except OSError: time.sleep(0.5)
    raise Failure(f'JupyterLab did not answer on {base} within {timeout:.0f} s')


def stop_lab(server: subprocess.Popen, base: str, token: str):
    "Shut down the kernels of the server we started, then the server itself, by its process id."
    try:
        for kernel in api(base, token, 'api/kernels'): api(base, token, f"api/kernels/{kernel['id']}", method='DELETE')
    except OSError: pass
    if server.poll() is None:
        os.kill(server.pid, signal.SIGTERM)
        try: server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
            server.wait()


_STATUS = "() => (document.querySelector('#jp-main-statusbar') || {}).innerText || ''"
_PROMPTS = "() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputPrompt')].map(p => p.innerText.trim())"
_ERRORS = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
  .map(e => e.innerText).filter(t => /Error|Traceback/.test(t)).map(t => t.slice(0, 600))"""
_IMAGE = """(root) => {
  const img = root.querySelector('img');
  if (!img || !img.complete || !img.naturalWidth) return null;
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  canvas.getContext('2d').drawImage(img, 0, 0);
  return {src: img.src, width: img.naturalWidth, pixels: canvas.toDataURL()};
}"""


def wait_until(tab, test, timeout: float, what: str, poll: float = 0.25):
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = test()
        if result: return result
        tab.wait_for_timeout(poll * 1000)
    raise Failure(f'timed out after {timeout:.0f} s waiting for {what}')


def check_notebook(base: str, token: str, notebook: str, screenshots: Path, timeout: float, timings: dict) -> list:
    from playwright.sync_api import sync_playwright
    host, blocked, page_errors = urlparse(base).netloc, [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=os.environ.get('CHROMIUM', '/usr/bin/chromium'), args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={'width': 1400, 'height': 1000})
        def route(r):
            if urlparse(r.request.url).netloc == host: return r.continue_()
            blocked.append(r.request.url)
            r.abort()
        context.route('**/*', route)
        tab = context.new_page()
        tab.on('pageerror', lambda e: page_errors.append(str(e)))
        try:
            start = time.time()
            tab.goto(f'{base}lab/tree/{quote(notebook)}?reset&token={token}', wait_until='domcontentloaded', timeout=120_000)
            tab.wait_for_selector('.jp-NotebookPanel .jp-Cell', timeout=120_000)
            # the notebook toolbar says idle before the status bar has a kernel; a Run All clicked then is lost
            status = wait_until(tab, lambda: (s := tab.evaluate(_STATUS)) and '| Idle' in s and s, 120, 'the status bar to show "<kernel> | Idle"')
            timings['Lab open, kernel idle'] = time.time() - start
            print(f'check_lab: notebook open, status bar: {" ".join(status.split())[:80]}')

            start = time.time()
            tab.click('.lm-MenuBar-itemLabel:text-is("Run")')
            tab.click('.lm-Menu-itemLabel:text-is("Run All Cells")')
            wait_until(tab, lambda: any('*' in p for p in tab.evaluate(_PROMPTS)), 30, 'Run All to start')
            wait_until(tab, lambda: not any('*' in p for p in tab.evaluate(_PROMPTS)) and '| Idle' in tab.evaluate(_STATUS), timeout,
                       'all cells to finish')
            timings['run all cells'] = time.time() - start
            problems = [f'a cell failed:\n{e}' for e in tab.evaluate(_ERRORS)]

            start = time.time()
            browsers = tab.query_selector_all('.jp-NotebookPanel:not(.lm-mod-hidden) .saltseg-browser')
            widget = browsers[-1] if browsers else None
            if widget is None:
                sliders = tab.query_selector_all('.jp-NotebookPanel:not(.lm-mod-hidden) .jupyter-widgets .widget-slider')
                widget = sliders[0].evaluate_handle('s => s.closest(".jp-OutputArea-output") || s.parentElement').as_element() if sliders else None
                if widget: print('check_lab: no .saltseg-browser in the notebook; checking its first slider instead')
            if widget is None:
                texts = tab.evaluate("() => [...document.querySelectorAll('.jp-OutputArea-output')].map(e => e.innerText).filter(t => /Browser\\(|interactive\\(|Loading widget|IntSlider\\(/.test(t)).map(t => t.slice(0, 120))")
                problems.append('no live widget with a slider in the outputs' + (f'; the outputs show text instead: {texts}' if texts else ''))
            else:
                widget.scroll_into_view_if_needed()
                handle = widget.query_selector('.widget-slider .noUi-handle, .widget-slider input[type="range"]')
                if not handle: problems.append('the widget has no slider handle (.widget-slider .noUi-handle)')
                before = wait_until(tab, lambda: widget.evaluate(_IMAGE), 30, 'the widget to show an image')
                readout = widget.query_selector('.widget-readout')
                value = readout.inner_text() if readout else '?'
                if handle:
                    handle.focus()
                    tab.keyboard.press('ArrowRight')
                    try:
                        after = wait_until(tab, lambda: (a := widget.evaluate(_IMAGE)) and a['pixels'] != before['pixels'] and a, 30, 'the image to change')
                        new_value = readout.inner_text() if readout else '?'
                        print(f'check_lab: slider {value} -> {new_value}: image changed ({before["width"]} px wide)')
                    except Failure as e: problems.append(f'ArrowRight on the slider did not change the shown image ({e})')
                timings['widget check'] = time.time() - start
                screenshots.mkdir(parents=True, exist_ok=True)
                tab.keyboard.press('Control+b')  # hide the file browser: more room for the notebook
                tab.wait_for_timeout(500)
                widget.evaluate("w => w.scrollIntoView({block: 'start'})")
                tab.wait_for_timeout(300)
                tab.screenshot(path=str(screenshots/'lab.png'))
                print(f'check_lab: screenshot {screenshots/"lab.png"}')
        except Exception as e:  # a Failure, or Playwright not finding what it waits for
            screenshots.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(screenshots/'lab-failure.png'))
            problems = [f'{type(e).__name__ if not isinstance(e, Failure) else ""} {e} (screenshot: {screenshots/"lab-failure.png"})'.strip()]
        finally: browser.close()
    problems += [f'JavaScript error: {e}' for e in page_errors]
    problems += [f'request to outside 127.0.0.1 blocked: {u}' for u in dict.fromkeys(blocked)]
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('notebook', nargs='?', default='nbs/03_explore.ipynb', type=Path, help='the notebook to run (default: nbs/03_explore.ipynb)')
    parser.add_argument('--screenshots', type=Path, default=Path(tempfile.gettempdir())/'saltseg-screenshots', help='folder for lab.png')
    parser.add_argument('--timeout', type=float, default=600, help='seconds allowed for running all cells')
    args = parser.parse_args()
    notebook = args.notebook.resolve()
    if not notebook.exists(): sys.exit(f'check_lab: {notebook} does not exist')
    check_tools()
    root = ROOT if notebook.is_relative_to(ROOT) else notebook.parent
    start, timings = time.time(), {}
    port, token = free_port(), secrets.token_hex(16)
    base = f'http://127.0.0.1:{port}/'
    with tempfile.TemporaryDirectory(prefix='saltseg-lab-') as scratch:
        server = start_lab(root, Path(scratch), port, token)
        try:
            wait_for_server(server, base, token, Path(scratch))
            timings['server start'] = time.time() - start
            print(f'check_lab: JupyterLab (server pid {server.pid}) answers on {base}')
            problems = check_notebook(base, token, notebook.relative_to(root).as_posix(), args.screenshots, args.timeout, timings)
        except Failure as e: problems = [str(e)]
        finally:
            stop = time.time()
            stop_lab(server, base, token)
            timings['stop'] = time.time() - stop
    print('check_lab: ' + ', '.join(f'{k} {v:.1f} s' for k, v in timings.items()) + f'; {time.time() - start:.1f} s in all')
    for problem in problems: print(f'FAIL {problem}')
    if problems: sys.exit(f'check_lab: {len(problems)} problem(s) with {notebook.name} in JupyterLab')
    print(f'check_lab: ok: {notebook.name} ran in JupyterLab, its widget browser renders and responds, nothing left 127.0.0.1')


if __name__ == '__main__': main()
