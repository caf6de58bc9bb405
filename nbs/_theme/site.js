// Search box of saltseg's offline docs site: loads search.json (built with the site) on first use.
(function () {
  const box = document.querySelector('.search');
  if (!box) return;
  const input = box.querySelector('input'), list = box.querySelector('.search-results');
  const root = box.dataset.root;
  let entries = null;
  async function load() {
    if (entries) return entries;
    try { entries = await (await fetch(box.dataset.index)).json(); }
    catch (e) { entries = []; }  // opened from file:// without a server: no search, no error
    return entries;
  }
  function item(href, title, detail) {
    const li = document.createElement('li'), a = document.createElement('a');
    a.href = root + href; a.textContent = title;
    const page = document.createElement('div');
    page.className = 'search-page'; page.textContent = detail;
    a.appendChild(page); li.appendChild(a);
    return li;
  }
  async function search() {
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    list.replaceChildren();
    if (!words.length) { list.hidden = true; return; }
    const found = (await load()).filter(e => words.every(w => (e.title + ' ' + e.text).toLowerCase().includes(w)));
    for (const e of found.slice(0, 12)) list.appendChild(item(e.href, e.title, e.page));
    if (!found.length) { const li = document.createElement('li'); li.className = 'search-none'; li.textContent = 'No results'; list.appendChild(li); }
    list.hidden = false;
  }
  input.addEventListener('input', search);
  input.addEventListener('keydown', e => { if (e.key === 'Escape') { input.value = ''; list.hidden = true; } });
  document.addEventListener('click', e => { if (!box.contains(e.target)) list.hidden = true; });
})();
