// Installed by `make bench` with page.add_init_script, before any script of the page runs.
// Records, in window.__bench, navigation-relative times (performance.now()):
//   marks.subscribed / marks.history   body[data-subscribed|data-history] set to "true"
//   marks.firstRow                      the first li.message added to the document
//   marks.pyReady, progress[]           PyScript's py:ready and py:progress events (ours only)
//   longtasks[]                         [startTime, duration] of every long task (> 50 ms)
//   stalls[]                            [from, duration]: a 16 ms timer fired over 50 ms late
//   sockets[]                           per WebSocket: created, open, authOk, init, big (the
//                                       first frame > 20 kB: the first page of a history read)
//   wasm[]                              WebAssembly compile/instantiate calls: [name, start, end]
// and keeps every WebAssembly.Memory it can see (created in JS or exported by an instance), so
// that the bench can read the wasm heap's size. Nothing the pages do is changed.
(() => {
    if (window.__bench) return;
    const now = () => performance.now();
    const B = (window.__bench = { marks: {}, progress: [], longtasks: [], sockets: [], wasm: [] });
    const memories = new Set();
    B.wasmMemoryBytes = () => {
        let total = 0;
        for (const memory of memories) total += memory.buffer.byteLength;
        return memories.size ? total : null;
    };

    try {
        new PerformanceObserver((list) => {
            for (const entry of list.getEntries()) B.longtasks.push([entry.startTime, entry.duration]);
        }).observe({ type: 'longtask', buffered: true });
    } catch (error) {
        B.longtasks = null; // not supported
    }

    // Long tasks miss main-thread work done in microtask checkpoints outside a task (Pyodide
    // boots that way when it can suspend on promises): a 16 ms timer that fires late says how
    // long the event loop could not run anything, whatever kept it busy.
    B.stalls = [];
    const TICK = 16;
    let expected = now() + TICK;
    const tick = () => {
        const at = now();
        const late = at - expected;
        if (late > 50) B.stalls.push([expected, late]);
        expected = at + TICK;
        setTimeout(tick, TICK);
    };
    setTimeout(tick, TICK);

    new MutationObserver((records) => {
        const at = now();
        for (const record of records) {
            const name = record.attributeName.slice(5); // data-subscribed -> subscribed
            if (!(name in B.marks) && record.target.getAttribute(record.attributeName) === 'true') {
                B.marks[name] = at;
            }
        }
    }).observe(document, {
        subtree: true,
        attributes: true,
        attributeFilter: ['data-subscribed', 'data-history'],
    });
    const rows = new MutationObserver((records) => {
        for (const record of records) {
            for (const node of record.addedNodes) {
                if (node.nodeType === 1 && node.matches('li.message')) {
                    B.marks.firstRow = now();
                    rows.disconnect();
                    return;
                }
            }
        }
    });
    rows.observe(document, { subtree: true, childList: true });

    window.addEventListener('py:progress', (event) => B.progress.push([now(), String(event.detail)]), true);
    window.addEventListener('py:ready', () => { B.marks.pyReady ??= now(); }, true);
    window.addEventListener('py:done', () => { B.marks.pyDone ??= now(); }, true);

    const NativeWebSocket = window.WebSocket;
    window.WebSocket = new Proxy(NativeWebSocket, {
        construct(target, args, newTarget) {
            const ws = Reflect.construct(target, args, newTarget);
            const rec = { created: now(), open: null, authOk: null, init: null, big: null, bigBytes: 0 };
            B.sockets.push(rec);
            ws.addEventListener('open', () => { rec.open = now(); });
            ws.addEventListener('message', (event) => {
                const data = event.data;
                if (typeof data !== 'string') return;
                if (data.length > 20000) {
                    if (rec.big === null) { rec.big = now(); rec.bigBytes = data.length; }
                    return;
                }
                if (rec.authOk === null && data.includes('"auth"') && data.includes('"ok"')) rec.authOk = now();
                if (rec.init === null && data.includes('"init"')) rec.init = now();
            });
            return ws;
        },
    });

    const W = WebAssembly;
    const NativeMemory = W.Memory;
    W.Memory = new Proxy(NativeMemory, {
        construct(target, args, newTarget) {
            const memory = Reflect.construct(target, args, newTarget);
            memories.add(memory);
            return memory;
        },
    });
    const keep = (instance) => {
        if (!(instance instanceof W.Instance)) return;
        for (const value of Object.values(instance.exports)) {
            if (value instanceof NativeMemory) memories.add(value);
        }
    };
    for (const name of ['compile', 'compileStreaming', 'instantiate', 'instantiateStreaming']) {
        const original = W[name];
        if (typeof original !== 'function') continue;
        W[name] = function (...args) {
            const start = now();
            const result = original.apply(this, args);
            result.then(
                (value) => {
                    B.wasm.push([name, start, now()]);
                    keep(value && value.instance ? value.instance : value);
                },
                () => {},
            );
            return result;
        };
    }
})();
