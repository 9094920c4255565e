"""The page's theme, CSS and the JavaScript it runs (the link that names a search, the map's hover and click)."""
from __future__ import annotations

import gradio as gr

# After a search: the page's URL names it (the query's id when it is indexed, the mode and k), so that
# Back, Reload and a copied link bring it back; Back reloads the page to get there. Only a new query adds
# a history entry: Back steps through queries, not through every k tried.
# The query is named by the first 16 hex digits of its SHA-256 (its id is those 63 bits; a JSON number
# that large loses digits in JavaScript).
KEEP_IN_URL = """(query, own, mode, k, intent, rerank) => {
  if (!query) { return; }  // no photo (a fresh page, a cleared query): the address stays as it is
  const url = new URL(window.location.href);
  if (own) { url.searchParams.set("q", own); } else { url.searchParams.delete("q"); }
  url.searchParams.set("mode", mode); url.searchParams.set("k", String(k));
  // an intent names its options; other options are named by their re-ranking (robust and regions are not kept)
  url.searchParams.delete("i"); url.searchParams.delete("r");
  if (intent) { url.searchParams.set("i", intent); }
  else if (rerank && rerank !== "none") { url.searchParams.set("r", rerank); }
  // a new query is a new history entry; a change of k, mode or re-ranking replaces the entry, and so does
  // the first search of a bare address (else Back to it searched and pushed again: Back could not leave)
  const here = new URL(window.location.href).searchParams;
  const replace = !here.has("mode") || url.searchParams.get("q") === here.get("q");
  if (url.href !== window.location.href) {
    if (replace) { window.history.replaceState(null, "", url); } else { window.history.pushState(null, "", url); }
  }
  window.onpopstate = () => window.location.reload();
}"""

# After an upload on a phone: the results are below the query and the examples, so the view moves to them.
SHOW_RESULTS_ON_PHONE = """() => {
  if (window.matchMedia('(max-width: 640px)').matches) {
    document.querySelector('#status')?.scrollIntoView({block: 'start'});
  }
}"""

# Names for what a screen reader meets, on the buttons and thumbnails Gradio renders without one (or
# with one that leaves their visible text out): an example is named by its file, a hit by its caption,
# a shown image by its box's label.
# Kept up as results arrive.
NAME_IMAGES = """() => {
  const name = () => {
    document.querySelectorAll('#examples button.gallery-item:not([aria-label])').forEach((button, n) => {
      const src = button.querySelector('img')?.getAttribute('src') || '';
      button.setAttribute('aria-label', `Example ${n + 1}: ${decodeURIComponent(src.split('/').pop() || '')}`);
    });
    document.querySelectorAll('.image-container > button:not([aria-label])').forEach((button) => {
      const label = button.closest('.block')?.querySelector('label')?.textContent.trim();
      button.setAttribute('aria-label', label || 'Image');  // a shown image Gradio wraps in an unnamed button
    });
    document.querySelectorAll('button[aria-label]').forEach((button) => {  // a caption, an upload box's words
      const text = button.innerText.replace(/\\s+/g, ' ').trim();
      if (text && !button.getAttribute('aria-label').includes(text)) button.setAttribute('aria-label', text);
    });
  };
  let pending = false;  // once per frame, however many changes arrive
  new MutationObserver(() => {
    if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; name(); }); }
  }).observe(document.body, {childList: true, subtree: true});
  name();
}"""

# The heatmaps' colour scale ('jet', as plots.heat_overlay draws them).
HEAT_SCALE = ('<div class="heat-scale"><span>least</span><i></i><span>most of the similarity</span></div>')

# The end of a page's first load (its link restored, or its first example searched, and the follow-up
# done): a mark that a browser can wait for.
MARK_LOADED = "() => { document.body.dataset.loaded = '1'; }"

# The machine's own sans-serif fonts: the Source Sans Pro that Gradio serves offline has no bold capitals,
# so a bold "Agreement" began with a thin "A" (capitals fell back to the regular face).
# Colours dark enough for text (WCAG AA, 4.5:1 on white, checked by axe-core in the tests): Gradio's
# orange-500 buttons and tabs and its grey-400 help text measured 2.8:1 and 1.9:1.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"]).set(
    color_accent="*primary_700", button_primary_background_fill="*primary_700",
    button_primary_background_fill_hover="*primary_800", body_text_color_subdued="*neutral_600")
# Rank by rank: every gallery cell has the same height, so row r of both lists shows the same ranks.
CSS = """
.ranked .grid-wrap.fixed-height, .ranked .gallery-container { max-height: none !important; height: auto !important;
  min-height: 0 !important; overflow-y: visible !important; }
.ranked .thumbnail-item { aspect-ratio: 4 / 3; }
#details { overflow-wrap: anywhere; }
#selection { position: fixed; right: 16px; bottom: 16px; width: min(760px, calc(100vw - 32px)); max-height: 72vh;
  overflow-y: auto; z-index: 40; background: var(--background-fill-primary); border: 1px solid
  var(--border-color-primary); border-radius: 8px; box-shadow: 0 6px 28px rgba(0, 0, 0, .25); padding: 10px; }
.heat-scale { display: flex; align-items: center; gap: 8px; font-size: 0.85em; }
.heat-scale i { flex: 0 1 240px; height: 10px; border-radius: 2px;
  background: linear-gradient(90deg, #00007f, #0000ff, #007fff, #00ffff, #7fff7f, #ffff00, #ff7f00, #ff0000, #7f0000); }
#startup:has(span.md:empty) { display: none; }  /* no start-up line: no empty gap above the query */
.labelled-plot { padding-top: 30px !important; }  /* a plot's box label sits above it, not over its top */
#why .grid-wrap, #why .gallery-container { max-height: none !important; height: auto !important; min-height: 0 !important; }  /* long paths wrap instead of being cut off */
@media (max-width: 640px) {  /* a phone keeps the two lists side by side, one hit per row */
  .pair { flex-wrap: nowrap !important; gap: 6px !important; }
  .pair .ranked { min-width: 0 !important; }
  .ranked .grid-container { grid-template-columns: 1fr !important; }
  /* the whole photo, and one line of caption: the rank, the cosine and the folder come first */
  .pair .ranked .thumbnail-item { --object-fit: contain !important; }
  .pair .ranked .thumbnail-item img { object-fit: contain !important; }
  .pair .ranked .caption-label { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; font-size: 0.7em; }
  /* its first screen: a short intro, the query, one row of examples, then the results; the controls below */
  #intro h1 { font-size: 1.3em; margin-bottom: 4px; } #intro-more { display: none; }
  #search-row { flex-direction: column !important; } #search-side { display: contents !important; }
  #search-results { order: 1; } #search-controls { order: 2; }
  #query { height: 170px !important; }
  #examples .gallery { flex-wrap: nowrap !important; overflow-x: auto; }
  #examples .gallery-item { flex: 0 0 auto; } #examples .gallery-item img { height: 56px !important; width: auto; }
  #map-panes { flex-direction: column !important; } #map-panes > * { width: 100% !important; }
  #why .grid-container { grid-template-columns: repeat(2, 1fr) !important; }  /* heatmaps across the width */
  #selection { right: 0; bottom: 0; width: 100vw; max-height: 62vh; border-radius: 8px 8px 0 0; }
}
.ranked .caption-label { white-space: normal; font-size: 0.8em; line-height: 1.25; max-width: 100%; }
.dup-row { display: flex; gap: 8px; align-items: flex-start; overflow-x: auto; padding: 6px 0;
  border-bottom: 1px solid var(--border-color-primary); }
.dup-row figure { margin: 0; flex: 0 0 auto; width: 150px; }
.dup-row img { width: 150px; height: 110px; object-fit: contain; background: var(--background-fill-secondary); }
.dup-row figcaption { font-size: 0.8em; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.dup-n { font-weight: 600; min-width: 1.5em; }
.map { position: relative; } .map svg { width: 100%; max-width: 520px; border: 1px solid #ddd; cursor: pointer; }
.map-title { font-weight: 600; margin-bottom: 4px; } .map circle:hover { stroke: black; stroke-width: 2; }
.map-legend { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: 2px 10px;
  font-size: 0.85em; margin-top: 6px; }  /* 10 to 40 classes in even columns */
.map-key { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.map-key i { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 4px; }
.map-tip { position: absolute; display: none; z-index: 10; background: white; border: 1px solid #999;
  padding: 4px; max-width: 180px; font-size: 0.75em; overflow-wrap: anywhere; pointer-events: none; }
.map-tip img { max-width: 170px; max-height: 130px; display: block; }
"""


# The map's hover preview and click: a thumbnail (made on demand by the server for the point's id, only
# for indexed files under the roots) and the file's name follow the pointer; a click selects the point,
# and the app searches with it.
MAP_JS = """
const tipOf = () => element.querySelector('.map-tip') || (() => {
  const tip = document.createElement('div'); tip.className = 'map-tip';
  tip.append(document.createElement('img'), document.createElement('div'));
  element.appendChild(tip); return tip; })();
element.addEventListener('mouseover', async (event) => {
  const point = event.target.closest('circle'); if (!point) return;
  const tip = tipOf(), box = element.getBoundingClientRect(), [img, caption] = tip.children;
  caption.textContent = point.dataset.n; img.removeAttribute('src'); tip.style.display = 'block';
  tip.style.left = Math.min(event.clientX - box.left + 12, box.width - 180) + 'px';
  tip.style.top = (event.clientY - box.top + 12) + 'px';
  const url = await server.thumbnail(point.dataset.id);
  if (url && caption.textContent === point.dataset.n) img.src = url;
});
element.addEventListener('mouseout', (event) => {
  if (event.target.closest('circle')) tipOf().style.display = 'none'; });
element.addEventListener('click', (event) => {
  const point = event.target.closest('circle');
  if (point) trigger('select', {index: 0, value: point.dataset.id});
});
"""
