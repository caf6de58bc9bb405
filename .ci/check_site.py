#!/usr/bin/env python
"""Open every page of the docs site that `saltseg_docs` built in headless Chromium and check it.

Usage: python .ci/check_site.py SITE [--screenshots DIR] [--nbs NBS]

Serves SITE on 127.0.0.1 (a free port) and fails, with one line per problem, when:
- a page is missing from the sidebar;
- a link inside the site points to a missing page or a missing #anchor, or a file of the site is missing (404);
- a page has a JavaScript error (uncaught exception or console error);
- a request leaves 127.0.0.1 (every such request is blocked and counted: the site must work offline);
- a page whose notebook exports code lacks an API entry (nbdev's show_doc block) for an exported name;
- a page shows fewer figures (<img>) than its notebook has image outputs.
Saves screenshots of the front page and of the study page (the notebook with 'study' in its name).
Needs Playwright (pip) and Debian's Chromium at /usr/bin/chromium (or $CHROMIUM).
"""
import argparse, ast, functools, http.server, json, os, re, sys, threading, time
from pathlib import Path
from urllib.parse import urldefrag, urlparse, unquote

CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync']
IMAGE_TYPES = ('image/png', 'image/jpeg', 'image/gif', 'image/svg+xml')
_directive = re.compile(r'^\s*#\s*\|\s*(.*)$')


def cell_directives(source: str) -> dict:
    "The `#| ...` directives of a cell: `{'export': True, 'echo': 'false', ...}` (values as lower-case text)."
    found = {}
    for line in source.splitlines():
        match = _directive.match(line)
        if not match: continue
        text = match.group(1).strip()
        key_value = re.match(r'^([\w-]+)\s*:\s*(.*)$', text)
        if key_value: found[key_value.group(1)] = key_value.group(2).strip().strip('"\'').lower()
        elif text: found[text.split()[0]] = True
    return found


def _dropped(directives: dict) -> bool:
    return 'hide' in directives or directives.get('include') == 'false'


def exported_names(cells: list) -> list:
    "Names nbdev documents for a notebook: public functions and classes of its `#| export(s)` cells (as nbdev's add_show_docs)."
    from nbdev.showdoc import showdoc_nm
    names = []
    for cell in cells:
        source = ''.join(cell['source'])
        directives = cell_directives(source)
        if cell['cell_type'] != 'code' or _dropped(directives) or not ({'export', 'exports', 'exec_doc'} & set(directives)): continue
        code = '\n'.join(l for l in source.splitlines() if not re.match(r'^\s*[%!]', l))
        try: tree = ast.parse(code)
        except SyntaxError: continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and (node.name[0] != '_' or node.name[:2] == '__'):
                names.append(showdoc_nm(node))
    return names


def figure_count(cells: list) -> int:
    "How many image outputs the docs show for a notebook: those of cells that are neither hidden nor exported nor output-less."
    count = 0
    for cell in cells:
        if cell['cell_type'] != 'code': continue
        directives = cell_directives(''.join(cell['source']))
        if _dropped(directives) or directives.get('output') == 'false' or {'export', 'exporti', 'default_exp'} & set(directives): continue
        count += sum(any(k in o.get('data', {}) for k in IMAGE_TYPES) for o in cell.get('outputs', []))
    return count


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


def serve(site: Path):
    "Serve `site` on 127.0.0.1 at a free port, in a thread; the server and its base URL."
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_QuietHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f'http://127.0.0.1:{server.server_address[1]}/'


_PAGE_FACTS = """() => {
  const text = e => e.textContent.replace(/#$/, '').trim();
  return {
    title: document.title,
    notebook: (document.querySelector('meta[name="saltseg:notebook"]') || {}).content || null,
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    sidebar: [...document.querySelectorAll('#sidebar a[href]')].map(a => a.href),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    api: [...document.querySelectorAll('.doc-entry h2, .doc-entry h3, .doc-entry h4')].map(text),
    figures: document.querySelectorAll('#content .cell-output img').length,
    broken_images: [...document.querySelectorAll('img')].filter(i => i.complete && i.naturalWidth === 0).map(i => i.src.slice(0, 80)),
  };
}"""


def check_site(site: Path, nbs: Path, screenshots: Path | None) -> int:
    from playwright.sync_api import sync_playwright
    start = time.time()
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob('*.html') if 'site_libs' not in p.relative_to(site).parts)
    if not pages: return print(f'check_site: no .html pages in {site}') or 1
    server, base = serve(site)
    host = urlparse(base).netloc
    problems, facts, blocked = {p: [] for p in pages}, {}, []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=os.environ.get('CHROMIUM', '/usr/bin/chromium'), args=CHROMIUM_FLAGS)
            context = browser.new_context(viewport={'width': 1280, 'height': 900})
            def route(r):
                if urlparse(r.request.url).netloc == host: return r.continue_()
                blocked.append((current[0], r.request.url))
                r.abort()
            current = [None]
            context.route('**/*', route)
            tab = context.new_page()
            tab.on('pageerror', lambda e: problems[current[0]].append(f'JavaScript error: {e}'))
            tab.on('console', lambda m: m.type == 'error' and problems[current[0]].append(f'console error: {m.text}'))
            tab.on('response', lambda r: r.status >= 400 and problems[current[0]].append(f'HTTP {r.status} for {r.url}'))
            timings = {}
            for page in pages:
                current[0] = page
                t = time.time()
                tab.goto(base + page, wait_until='load', timeout=60_000)
                facts[page] = tab.evaluate(_PAGE_FACTS)
                timings[page] = time.time() - t
            other = next((p for p in pages if p != pages[0]), None)
            current[0] = pages[0]
            tab.goto(base + pages[0], wait_until='load')
            if other and tab.query_selector('.search input'):  # the search box finds another page by its title
                title = facts[other]['title'].split(' – ')[0]
                tab.fill('.search input', title)
                try: tab.wait_for_selector(f'.search-results a[href$="{other}"]', timeout=5000)
                except Exception: problems[pages[0]].append(f'the search box does not find {other} by its title {title!r}')
            if screenshots:
                screenshots.mkdir(parents=True, exist_ok=True)
                study = next((p for p in pages if 'study' in (facts[p]['notebook'] or '')), None)
                shots = {'front.png': 'index.html' if 'index.html' in pages else pages[0]}
                if study: shots['study.png'] = study
                else:
                    busiest = max(pages, key=lambda p: facts[p]['figures'])
                    print(f'check_site: no study page yet (no notebook with "study" in its name); screenshot of {busiest} instead')
                    shots[f'{Path(busiest).stem}.png'] = busiest
                for name, page in shots.items():
                    current[0] = page
                    tab.goto(base + page, wait_until='load')
                    tab.screenshot(path=str(screenshots/name))
                    print(f'check_site: screenshot of {page}: {screenshots/name}')
            browser.close()
    finally:
        server.shutdown()

    ids = {page: set(f['ids']) for page, f in facts.items()}
    for page, f in facts.items():
        sidebar = {unquote(urlparse(u).path).lstrip('/') for u in f['sidebar'] if urlparse(u).netloc == host}
        if missing := [p for p in pages if p not in sidebar]: problems[page].append(f'missing from the sidebar: {", ".join(missing)}')
        for url in f['links']:
            if urlparse(url).netloc != host: continue
            address, fragment = urldefrag(url)
            target = unquote(urlparse(address).path).lstrip('/') or 'index.html'
            if target.endswith('/'): target += 'index.html'
            if not (site/target).is_file(): problems[page].append(f'broken link: {url[len(base):]} (no such file)')
            elif fragment and target in ids and unquote(fragment) not in ids[target]:
                problems[page].append(f'broken link: {url[len(base):]} (no #{fragment} in {target})')
        for src in f['broken_images']: problems[page].append(f'image that does not load: {src}')
        notebook = nbs/f['notebook'] if f['notebook'] else None
        f['expected_api'], f['expected_figures'] = [], 0
        if notebook is None or not notebook.exists():
            problems[page].append(f'no source notebook for this page ({f["notebook"]!r} in {nbs})')
            continue
        cells = json.loads(notebook.read_text(encoding='utf-8'))['cells']
        f['expected_api'], f['expected_figures'] = exported_names(cells), figure_count(cells)
        if missing := [n for n in f['expected_api'] if n not in f['api']]:
            problems[page].append(f'no API entry (show_doc) for: {", ".join(missing)}')
        if f['figures'] < f['expected_figures']:
            problems[page].append(f'{f["figures"]} figures on the page, but {notebook.name} has {f["expected_figures"]} image outputs')
    for page, url in blocked: problems[page].append(f'request to outside 127.0.0.1 blocked: {url}')

    width = max(map(len, pages))
    for page in pages:
        f = facts.get(page, {})
        status = 'FAIL' if problems[page] else 'ok  '
        print(f"{status} {page:{width}}  {timings.get(page, 0):5.2f} s  links {len(f.get('links', [])):3d}  "
              f"api {len(f.get('api', []))}/{len(f.get('expected_api', []))}  figures {f.get('figures', 0)}/{f.get('expected_figures', 0)}")
        for problem in dict.fromkeys(problems[page]): print(f'     {problem}')
    failed = [p for p in pages if problems[p]]
    print(f'check_site: {len(pages) - len(failed)} of {len(pages)} pages ok, {len(blocked)} outside requests blocked, '
          f'{time.time() - start:.1f} s in all')
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('site', type=Path, help='the built site, e.g. _site')
    parser.add_argument('--screenshots', type=Path, help='folder for the screenshots of the front and study pages')
    parser.add_argument('--nbs', type=Path, default=Path(__file__).resolve().parent.parent/'nbs', help='the notebooks the site was built from')
    args = parser.parse_args()
    if not args.site.is_dir(): sys.exit(f'check_site: {args.site} is not a folder (build the site with saltseg_docs first)')
    try: import playwright.sync_api  # noqa: F401
    except ImportError: sys.exit('check_site: needs Playwright: pip install playwright (its browser download is not needed)')
    chromium = os.environ.get('CHROMIUM', '/usr/bin/chromium')
    if not Path(chromium).exists(): sys.exit(f'check_site: no Chromium at {chromium}: apt-get install -y chromium (or set $CHROMIUM)')
    sys.exit(check_site(args.site.resolve(), args.nbs.resolve(), args.screenshots))


if __name__ == '__main__': main()
