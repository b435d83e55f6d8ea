// circuitscope page shell: boots the wasm (with download progress), moves
// model files from the browser (file chooser, drag and drop, bundled models)
// straight into wasm memory, and bridges the clipboard. The C++ side is
// src/app/bridge.cpp (calls into C++) and src/app/platform.cpp (calls out).
'use strict';
(function () {
  const el = (id) => document.getElementById(id);
  const bootEl = el('boot');
  const statusEl = el('boot-status');
  const progressEl = el('boot-progress');
  const detailEl = el('boot-detail');
  const canvas = el('canvas');
  const dropOverlay = el('drop-overlay');
  const fileInput = el('file-input');
  const MB = (n) => (n / 1e6).toFixed(1) + ' MB';

  // ---- boot screen ----------------------------------------------------------
  let fatalShown = false;
  let pageStarted = false;
  let bootModelDone = false;
  let contextLost = false;  // the WebGL context, until the browser restores it

  function fatal(message) {
    fatalShown = true;
    bootEl.hidden = false;
    bootEl.classList.add('fatal');
    statusEl.textContent = message;
    detailEl.textContent = '';
  }

  function bootProgress(status, loaded, total) {
    if (fatalShown) return;
    statusEl.textContent = status;
    if (total > 0) {
      progressEl.max = total;
      progressEl.value = Math.min(loaded, total);
      detailEl.textContent = `${MB(loaded)} / ${MB(total)}`;
    } else {
      progressEl.removeAttribute('value');
      detailEl.textContent = loaded > 0 ? MB(loaded) : '';
    }
  }

  function maybeHideBoot() {
    if (pageStarted && bootModelDone && !fatalShown && !contextLost) bootEl.hidden = true;
  }

  if (!document.createElement('canvas').getContext('webgl2')) {
    fatal('circuitscope needs WebGL2, which this browser does not provide (or has turned off). ' +
          'Try a current Chrome, Edge, Firefox or Safari, with hardware acceleration enabled.');
    return;
  }
  // The page (src/app/main.cpp) asks the browser to restore a lost WebGL
  // context and draws again once it is; the model stays. Meanwhile this says why
  // nothing moves.
  canvas.addEventListener('webglcontextlost', () => {
    if (fatalShown) return;
    contextLost = true;
    bootEl.hidden = false;
    bootProgress('The graphics were reset (the WebGL context was lost); waiting for the browser to restore them. ' +
                 'The model and your selections stay.', 0, 0);
  });
  canvas.addEventListener('webglcontextrestored', () => {
    contextLost = false;
    maybeHideBoot();
  });
  canvas.addEventListener('contextmenu', (e) => e.preventDefault());

  // ---- C++ functions (src/app/bridge.cpp) -------------------------------------
  let api = null;
  function wrapApi() {
    const w = (name, ret, args) => Module.cwrap(name, ret, args);
    return {
      checkFileSize: w('cs_check_file_size', 'number', ['string', 'number']),
      stageFile: w('cs_stage_file', 'number', ['string', 'number']),
      stageReserve: w('cs_stage_reserve', 'number', ['string', 'number']),
      stageAppend: w('cs_stage_append', 'number', ['string', 'number']),
      stageSkipped: w('cs_stage_skipped', null, ['string']),
      discardStaged: w('cs_discard_staged', null, []),
      loadStaged: w('cs_load_staged', null, ['string', 'string', 'string', 'string']),
      trainCheckFile: w('cs_train_check_file', 'number', ['string', 'number']),
      trainReceived: w('cs_train_received', null, ['string']),
      trainFetchFailed: w('cs_train_fetch_failed', null, ['string']),
      setBundledIndex: w('cs_set_bundled_index', null, ['string']),
      downloadProgress: w('cs_download_progress', null, ['string', 'number', 'number', 'number']),
      reportError: w('cs_report_error', null, ['string']),
      pasteText: w('cs_paste_text', null, ['string']),
      stateJson: w('cs_state_json', 'string', []),
      bigramTopJson: w('cs_bigram_top_json', 'string', ['number', 'number']),
      linkQuery: w('cs_link_query', 'string', []),
      openLink: w('cs_open_link', 'string', ['string', 'string']),
    };
  }

  // An error the C++ side already put in the banner (e.g. a file too large).
  class Reported extends Error {}

  function reportError(err) {
    if (err instanceof Reported) return;
    const message = String((err && err.message) || err);
    if (api) api.reportError(message);
    else fatal(message);
  }

  // ---- the site's files: fetched, or embedded in the one-file offline page ------------
  // scripts/make-offline.mjs writes circuitscope-offline.html with every file
  // the page needs in window.circuitscopeEmbedded (relative path -> base64),
  // so that page opens from file:// and never touches the network.
  const embedded = window.circuitscopeEmbedded || null;
  function embeddedBytes(path) {
    const b64 = embedded && Object.prototype.hasOwnProperty.call(embedded, path) ? embedded[path] : null;
    if (typeof b64 !== 'string') return null;
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function siteFetch(path) {
    const bytes = embeddedBytes(path);
    if (bytes) return Promise.resolve(new Response(bytes, { headers: { 'Content-Length': String(bytes.length) } }));
    return fetch(path);
  }

  // Everything that stages files runs one at a time, in order.
  let chain = Promise.resolve();
  let busy = 0;
  function enqueue(task) {
    busy++;
    chain = chain.then(task).catch(reportError).finally(() => { busy--; });
    return chain;
  }

  // A download that sends nothing for this long is given up (the model shown
  // stays). window.circuitscopeDownloadStallMs overrides it (the tests).
  const stallMs = () => Number(window.circuitscopeDownloadStallMs) > 0 ? Number(window.circuitscopeDownloadStallMs) : 30000;
  // reader.read(), or an error naming the file when the connection breaks or
  // no bytes come for stallMs().
  function readOrStall(reader, name) {
    let timer;
    const limit = stallMs();
    const stalled = new Promise((_, fail) => {
      timer = setTimeout(() => {
        reader.cancel().catch(() => {});
        fail(new Error(`${name}: the download stalled (no data for ${Math.round(limit / 1000)} s); try again`));
      }, limit);
    });
    const read = reader.read().catch((e) => {
      throw new Error(`${name}: the download broke off (${(e && e.message) || e}); try again`);
    });
    return Promise.race([read, stalled]).finally(() => clearTimeout(timer));
  }

  // Streams `size` bytes from a ReadableStream into a staging buffer owned by
  // C++ (no copy of the whole file in JavaScript). size < 0: unknown length.
  // The buffer is reserved untouched and filled chunk by chunk, so no single
  // task zero-fills hundreds of MB.
  async function streamIntoWasm(name, stream, size, onChunk) {
    const reader = stream.getReader();
    if (size >= 0) {
      if (!api.stageReserve(name, size)) { reader.cancel().catch(() => {}); throw new Reported(); }
      let offset = 0;
      for (;;) {
        const { done, value } = await readOrStall(reader, name);
        if (done) break;
        if (offset + value.length > size) throw new Error(`${name}: more bytes than its announced ${size}`);
        const ptr = api.stageAppend(name, value.length) >>> 0;
        if (!ptr) throw new Error(`${name}: could not stage bytes ${offset}..${offset + value.length}`);
        Module.HEAPU8.set(value, ptr);  // HEAPU8 is re-read: memory may have grown
        offset += value.length;
        onChunk(value.length);
      }
      if (offset !== size) throw new Error(`${name}: got ${offset} of ${size} bytes`);
      return;
    }
    const chunks = [];
    let total = 0;
    for (;;) {
      const { done, value } = await readOrStall(reader, name);
      if (done) break;
      chunks.push(value);
      total += value.length;
      onChunk(value.length);
    }
    const ptr = api.stageFile(name, total) >>> 0;
    if (!ptr) throw new Reported();
    let offset = 0;
    for (const c of chunks) { Module.HEAPU8.set(c, ptr + offset); offset += c.length; }
  }

  // ---- bundled models (assets/models/index.json) -------------------------------
  let bundled = [];

  // Streams files ([{name, stream, size}], size -1 when unknown) into the
  // staging area one after the other, the progress shown under `label` (the
  // model panel's line above its bar, e.g. "Downloading the text sample"; total
  // 0: unknown) and passed to onProgress(loaded, total). On failure the
  // staging area is emptied and the error thrown on.
  async function stageAll(entries, label, total, onProgress) {
    let loaded = 0;
    const onChunk = (n) => {
      loaded += n;
      api.downloadProgress(label, loaded, total, 1);
      if (onProgress) onProgress(loaded, total);
    };
    api.discardStaged();
    try {
      for (const e of entries) await streamIntoWasm(e.name, e.stream, e.size, onChunk);
    } catch (e) {
      api.discardStaged();
      throw e;
    } finally {
      api.downloadProgress(label, loaded, total, 0);
    }
  }

  // Downloads files ([{url, name, optional}]: an optional one that is not
  // there is left out) of this site (or the one-file page) into the staging area.
  async function downloadIntoStaging(files, label, onProgress) {
    const responses = await Promise.all(files.map((f) => siteFetch(f.url)));
    const giveUp = (err) => {  // the other downloads are not read
      for (const r of responses) if (r.body) r.body.cancel().catch(() => {});
      throw err;
    };
    const got = [];
    responses.forEach((r, i) => {
      if (r.ok) got.push({ file: files[i], r });
      else if (!files[i].optional) giveUp(new Error(`${files[i].url}: HTTP ${r.status} ${r.statusText}`));
    });
    const sizes = got.map(({ r }) => {
      const n = Number(r.headers.get('Content-Length'));
      return r.headers.get('Content-Encoding') || !(n >= 0) || r.headers.get('Content-Length') === null ? -1 : n;
    });
    got.forEach(({ file }, i) => { if (sizes[i] >= 0 && !api.checkFileSize(file.name, sizes[i])) giveUp(new Reported()); });
    const total = sizes.every((n) => n >= 0) ? sizes.reduce((a, b) => a + b, 0) : 0;
    await stageAll(got.map(({ file, r }, i) => ({ name: file.name, stream: r.body, size: sizes[i] })), label, total, onProgress);
  }

  // Downloads a model's files and loads them as one model.
  async function fetchModel(id, title, description, origin, files, boot) {
    const what = `Downloading the model "${title}"`;
    if (boot) bootProgress(what, 0, 0);
    await downloadIntoStaging(files, `Downloading ${title}`, boot ? (loaded, total) => bootProgress(what, loaded, total) : null);
    api.loadStaged(id, title, description, origin);
  }

  async function loadBundled(id, boot) {
    const entry = bundled.find((m) => m.id === id);
    if (!entry) throw new Error(`bundled model '${id}' is not listed in assets/models/index.json`);
    const files = entry.files.map((f) => ({ url: `assets/models/${encodeURIComponent(id)}/${f}`, name: f.split('/').pop() }));
    await fetchModel(id, entry.title || id, entry.description || '', 'bundled', files, boot);
  }

  // A link's model given as an address on this page's own site: a folder
  // (model.safetensors, config.json, and tokenizer.json when there is one), a
  // .safetensors file (with config.json and tokenizer.json beside it when
  // there are) or a .pth file (config.json beside it). Another site is
  // refused: a link never makes the page fetch from anywhere else.
  async function loadFromAddress(ref, boot) {
    const u = new URL(ref, location.href);
    if (u.origin !== location.origin || !/^https?:$/.test(u.protocol))
      throw new Error(`This link's model "${ref.slice(0, 80)}" is on another site: a link only opens models of this page's own site.`);
    const file = /\.(safetensors|pth|pt)$/i.test(u.pathname);
    const pth = /\.(pth|pt)$/i.test(u.pathname);
    const dir = file ? new URL('.', u) : new URL(u.pathname.endsWith('/') ? u.href : u.href + '/');
    const files = [
      { url: file ? u.href : new URL('model.safetensors', dir).href, name: file ? decodeURIComponent(u.pathname.split('/').pop()) : 'model.safetensors' },
      { url: new URL('config.json', dir).href, name: 'config.json', optional: file && !pth },
      { url: new URL('tokenizer.json', dir).href, name: 'tokenizer.json', optional: true },
    ];
    await fetchModel(ref, ref, `opened from ${u.pathname}`, 'address', files, boot);
  }

  async function boot() {
    let list = [];
    try {
      const r = await siteFetch('assets/models/index.json');
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      list = await r.json();
      if (!Array.isArray(list)) throw new Error('expected a list of models');
    } catch (e) {
      reportError(new Error(`assets/models/index.json: ${e.message}`));
      list = [];
    }
    bundled = list.filter((m) => m && typeof m.id === 'string' && Array.isArray(m.files));
    api.setBundledIndex(JSON.stringify(bundled));
    await openLink(true);
  }

  // ---- links: the page's state in the address (src/app/link.h) ----------------------
  // Opens location.search: its model (a bundled id; file:<name> waits for the
  // user's files, which the C++ side asks for), then the rest once that model
  // is shown. An unknown model: a message, and the first bundled model.
  async function openLink(boot) {
    const params = new URLSearchParams(location.search);
    let wanted = params.get('model');
    if (wanted === 'none') return;
    const isBundled = (id) => bundled.some((m) => m.id === id);
    let problem = null;
    const shownId = () => { const m = JSON.parse(api.stateJson()).model; return m ? m.id : null; };
    // A model that is neither bundled nor dropped files: an address on this site (a folder or a .safetensors).
    if (wanted && !wanted.startsWith('file:') && !isBundled(wanted) && wanted !== shownId()) {
      const looksLikeAddress = /[/.]/.test(wanted);
      try {
        if (!looksLikeAddress) throw new Error(`This link's model "${wanted.slice(0, 60)}" is not one of this page's models.`);
        api.openLink('?' + params.toString(), '');
        await loadFromAddress(wanted, boot);
        return;
      } catch (e) {
        // Said with the link's other problems once the fallback is shown (a load clears the banner).
        problem = `${e.message} Showing ${bundled.length ? bundled[0].title : 'no model'} instead.`;
        wanted = null;
        params.delete('model');
      }
    }
    if (!wanted && bundled.length) {
      wanted = bundled[0].id;
      params.set('model', wanted);
    }
    api.openLink('?' + params.toString(), problem || '');
    if (wanted && isBundled(wanted) && shownId() !== wanted) await loadBundled(wanted, boot);
    else if (problem && !wanted) reportError(new Error(problem));  // no model to wait for
  }

  // The address follows the page: a new history entry when the state changes
  // after a second of quiet, else the current entry is replaced (typing a
  // prompt or dragging a slider does not make one entry a keystroke).
  let linkShown = null;
  let linkChanged = 0;
  function followLink() {
    requestAnimationFrame(followLink);
    if (!api || !bootModelDone) return;
    const q = api.linkQuery();
    if (!q || q === linkShown) return;
    const url = location.pathname + '?' + q + location.hash;
    const now = performance.now();
    try {
      if (linkShown === null || now - linkChanged < 1000) history.replaceState(null, '', url);
      else history.pushState(null, '', url);
    } catch (e) {
      // A browser that keeps file:// pages from changing their address: Copy link still works.
    }
    linkShown = q;
    linkChanged = now;
  }
  window.addEventListener('popstate', () => {
    if (!api) return;
    linkShown = location.search.replace(/^\?/, '');  // restoring it: not a new entry
    enqueue(() => openLink(false));
  });

  // ---- the user's files: chooser and drag and drop --------------------------------
  const isModelFile = (name) => /\.(safetensors|pth|pt|json)$/i.test(name);

  function loadFiles(files) {
    files = files.filter(Boolean);
    if (!files.length) return;
    enqueue(async () => {
      // A file larger than the page holds is refused from its size, before any file is read.
      for (const f of files) if (isModelFile(f.name) && !api.checkFileSize(f.name, f.size)) throw new Reported();
      const total = files.reduce((a, f) => a + (isModelFile(f.name) ? f.size : 0), 0);
      const label = files.length === 1 ? files[0].name : `${files.length} files`;
      await stageAll(files.filter((f) => isModelFile(f.name)).map((f) => ({ name: f.name, stream: f.stream(), size: f.size })),
        `Reading ${label}`, total, null);
      for (const f of files) if (!isModelFile(f.name)) api.stageSkipped(f.name);
      const weights = files.find((f) => /\.(safetensors|pth|pt)$/i.test(f.name));
      const rel = files[0].webkitRelativePath || '';
      const folder = rel.includes('/') ? rel.split('/')[0] : '';
      const name = weights ? weights.name : files[0].name;
      api.loadStaged(`file:${name}`, folder || name, '', 'files');
    });
  }

  fileInput.addEventListener('change', () => {
    const files = Array.from(fileInput.files || []);
    fileInput.value = '';  // picking the same files again still fires "change"
    loadFiles(files);
  });

  // A dropped folder: its files (one level).
  function readFolder(dirEntry) {
    return new Promise((resolve, reject) => {
      const reader = dirEntry.createReader();
      const entries = [];
      const next = () => reader.readEntries((batch) => {
        if (!batch.length) {
          Promise.all(entries.filter((e) => e.isFile).map((e) => new Promise((res, rej) => e.file(res, rej))))
            .then(resolve, reject);
          return;
        }
        entries.push(...batch);
        next();
      }, reject);
      next();
    });
  }

  const hasFiles = (e) => !!e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files');
  let dragDepth = 0;
  document.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    dragDepth++;
    dropOverlay.hidden = false;
  });
  document.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  document.addEventListener('dragleave', (e) => {
    if (!hasFiles(e)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) dropOverlay.hidden = true;
  });
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    dragDepth = 0;
    dropOverlay.hidden = true;
    const dt = e.dataTransfer;
    if (!dt || !api) return;
    // Entries must be taken now: the DataTransfer empties after the event.
    const items = [];
    for (const item of Array.from(dt.items || [])) {
      if (item.kind !== 'file') continue;
      items.push({ entry: item.webkitGetAsEntry ? item.webkitGetAsEntry() : null, file: item.getAsFile() });
    }
    const plain = Array.from(dt.files || []);
    (async () => {
      const files = [];
      for (const { entry, file } of items) {
        if (entry && entry.isDirectory) files.push(...await readFolder(entry));
        else if (file) files.push(file);
      }
      loadFiles(files.length ? files : plain);
    })().catch(reportError);
  });

  // ---- clipboard ------------------------------------------------------------------
  function copyText(text) {
    if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(text).catch(() => {});
  }
  document.addEventListener('paste', (e) => {
    const text = e.clipboardData ? e.clipboardData.getData('text/plain') : '';
    if (text && api) {
      api.pasteText(text);
      e.preventDefault();
    }
  });

  // ---- the Train tab's text: the sample (assets/text/) and the user's text file ----------
  // Staged like a model's files, then handed to the Train view
  // (cs_train_received, src/app/bridge.cpp).

  // The text sample: index.json, then the files it names.
  function fetchTrainSample() {
    enqueue(async () => {
      try {
        const r = await siteFetch('assets/text/index.json');
        if (!r.ok) throw new Error(`assets/text/index.json: HTTP ${r.status}`);
        const indexBytes = new Uint8Array(await r.arrayBuffer());
        const index = JSON.parse(new TextDecoder().decode(indexBytes));
        const names = [index.train && index.train.file, index.heldout && index.heldout.file, index.tokenizer];
        if (names.some((n) => typeof n !== 'string' || !/^[\w.-]+$/.test(n)))
          throw new Error('assets/text/index.json does not name its files (train.file, heldout.file, tokenizer)');
        await downloadIntoStaging(names.map((n) => ({ url: `assets/text/${n}`, name: n })), 'Downloading the text sample');
        await streamIntoWasm('index.json', new Response(indexBytes).body, indexBytes.length, () => {});
        api.trainReceived('sample');
      } catch (e) {
        api.trainFetchFailed(e instanceof Reported ? 'not enough memory for the sample' : String((e && e.message) || e));
      }
    });
  }

  // One text file of the user's, for the Train tab.
  const textInput = document.createElement('input');
  textInput.type = 'file';
  textInput.id = 'train-text-input';
  textInput.accept = '.txt,.md,.rst,.py,.c,.h,.cpp,.js,.json,.csv,.html,.tex,text/*';
  textInput.style.display = 'none';
  document.body.appendChild(textInput);
  textInput.addEventListener('change', () => {
    const file = (textInput.files || [])[0];
    textInput.value = '';
    if (!file) return;
    enqueue(async () => {
      if (!api.trainCheckFile(file.name, file.size)) throw new Reported();
      await stageAll([{ name: file.name, stream: file.stream(), size: file.size }], `Reading ${file.name}`, file.size, null);
      api.trainReceived('file');
    });
  });

  // A file the page made (an export): saved through a link with a download
  // name; the bytes never leave the machine.
  function download(name, mime, bytes) {
    const url = URL.createObjectURL(new Blob([bytes], { type: mime }));
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    a.style.display = 'none';
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  // Saves files ([{name, mime, bytes}]) as the folder `folder`: where the
  // browser lets a page write into a folder the user picks (the File System
  // Access API, in Chromium-based browsers) as <picked>/<folder>/<name>, so
  // that the folder opens as it is in the page and the CLI; elsewhere, or when
  // the picker cannot open, as downloads named <folder>.<name>.
  async function saveFolder(folder, files) {
    if (typeof window.showDirectoryPicker === 'function') {
      let parent = null;
      try {
        parent = await window.showDirectoryPicker({ id: 'circuitscope-save', mode: 'readwrite' });
      } catch (e) {
        if (e && e.name === 'AbortError') return;  // the picker was closed: nothing is saved
      }
      if (parent) {
        const dir = await parent.getDirectoryHandle(folder, { create: true });
        for (const f of files) {
          const out = await (await dir.getFileHandle(f.name, { create: true })).createWritable();
          await out.write(f.bytes);
          await out.close();
        }
        return;
      }
    }
    for (const f of files) download(`${folder}.${f.name}`, f.mime, f.bytes);
  }

  // A rectangle of the WebGL canvas (CSS pixels) as a PNG download. Called by
  // the page right after it rendered a frame, while that frame's pixels are
  // still in the drawing buffer.
  function savePng(x, y, w, h, name) {
    const scale = canvas.width / Math.max(1, canvas.clientWidth);
    const out = document.createElement('canvas');
    out.width = Math.max(1, Math.round(w * scale));
    out.height = Math.max(1, Math.round(h * scale));
    out.getContext('2d').drawImage(canvas, Math.round(x * scale), Math.round(y * scale), out.width, out.height,
      0, 0, out.width, out.height);
    out.toBlob((blob) => { if (blob) blob.arrayBuffer().then((b) => download(name, 'image/png', new Uint8Array(b))); }, 'image/png');
  }

  // ---- the shell's one global object (used by src/app/platform.cpp and tests) ---------
  window.circuitscopeShell = {
    openFilePicker: () => fileInput.click(),
    openTextPicker: () => textInput.click(),
    fetchTrainSample,
    loadBundled: (id) => enqueue(() => loadBundled(id, false)),
    copyText,
    copyLink: () => window.circuitscopeShell.copyText(location.href),
    download,
    saveFolder: (folder, files) => saveFolder(folder, files).catch((e) =>
      reportError(new Error(`saving ${folder}: ${(e && e.message) || e}`))),
    savePng,
    fatal,
    pageStarted: () => { pageStarted = true; maybeHideBoot(); },
    busy: () => busy > 0,
    state: () => (api ? JSON.parse(api.stateJson()) : null),
    bigramTop: (id, k) => (api ? JSON.parse(api.bigramTopJson(id, k)) : null),
  };

  // ---- the wasm module ----------------------------------------------------------
  async function readWithProgress(response, name, onProgress) {
    const total = Number(response.headers.get('Content-Length')) || 0;
    const reader = response.body.getReader();
    const chunks = [];
    let loaded = 0;
    for (;;) {
      const { done, value } = await readOrStall(reader, name);
      if (done) break;
      chunks.push(value);
      loaded += value.length;
      onProgress(loaded, total);
    }
    const out = new Uint8Array(loaded);
    let offset = 0;
    for (const c of chunks) { out.set(c, offset); offset += c.length; }
    return out;
  }

  // The threaded build (circuitscope-mt.*: analyses on worker threads) needs
  // SharedArrayBuffer, which the browser gives only to a cross-origin isolated
  // page (served with COOP: same-origin and COEP: require-corp). Anywhere else
  // (file://, the one-file page, most static hosts) the single-threaded build
  // runs, with the same results. If the threaded files are missing, it falls back.
  let wasmName = 'circuitscope';
  const embeddedJs = embeddedBytes('circuitscope.js');
  if (self.crossOriginIsolated === true && typeof SharedArrayBuffer === 'function' && !embeddedJs) wasmName = 'circuitscope-mt';

  window.Module = {
    canvas,
    print: (text) => console.log(text),
    printErr: (text) => console.warn(text),
    instantiateWasm(imports, done) {
      const file = `${wasmName}.wasm`;
      siteFetch(file)
        .then((r) => {
          if (!r.ok) throw new Error(`HTTP ${r.status} ${r.statusText}`);
          return readWithProgress(r, file, (loaded, total) => bootProgress(`Downloading ${file}`, loaded, total));
        })
        .then((bytes) => {
          bootProgress('Starting…', 0, 0);
          return WebAssembly.instantiate(bytes, imports);
        })
        .then((out) => done(out.instance, out.module))
        .catch((e) => fatal(`Could not load ${file}: ${e.message}`));
      return {};
    },
    onRuntimeInitialized() {
      api = wrapApi();
      enqueue(boot).finally(() => { bootModelDone = true; maybeHideBoot(); });
      requestAnimationFrame(followLink);
    },
    onAbort(what) { fatal(`circuitscope stopped: ${what}`); },
  };

  function loadScript() {
    bootProgress(`Downloading ${wasmName}.wasm`, 0, 0);
    const script = document.createElement('script');
    if (embeddedJs) {
      script.textContent = new TextDecoder().decode(embeddedJs);
    } else {
      script.src = `${wasmName}.js`;
      script.onerror = () => {
        if (wasmName !== 'circuitscope') {  // no threaded build here: the single-threaded one
          console.warn(`${wasmName}.js not found; running single-threaded`);
          wasmName = 'circuitscope';
          loadScript();
          return;
        }
        fatal('Could not load circuitscope.js');
      };
    }
    document.body.appendChild(script);
  }
  loadScript();
})();
