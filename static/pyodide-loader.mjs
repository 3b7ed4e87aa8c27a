// The Pyodide build's interpreter (pyscript.toml's `interpreter`): Pyodide's own loadPyodide,
// started from a memory snapshot when the page links one.
//
// Pyodide's own start-up compiles its Python modules from the sources in python_stdlib.zip
// at every load (most of a warm start). A memory snapshot
// (stack/snapshot.py, built by `make setup`) is the interpreter's memory right after that
// start-up and a few imports; Pyodide restores it instead of running them. The page names
// the snapshot in a `<link rel="preload" data-pyodide-snapshot href=...>` (stack/pages.py), so
// the download starts with the page. Without that link, or when the snapshot cannot be used
// (a failed download, another Pyodide build), Pyodide starts the usual way.
//
// PyScript imports this module and calls loadPyodide() with its options (stdout, stderr,
// and an indexURL made from this file's folder, which is replaced by Pyodide's own).
// The way it started is left as a performance mark: RESTORED or REFUSED (then the console
// says why).
import { loadPyodide as loadPyodideItself, version } from "./runtime/pyodide/pyodide.mjs";

export { version };

const INDEX_URL = new URL("./runtime/pyodide/", import.meta.url).href;
export const RESTORED = "pyodide-loader: restored from the snapshot";
export const REFUSED = "pyodide-loader: snapshot refused, started without it";

// A snapshot holds one state of every module in it, so what must differ between loads is
// made again after a restore: `random` was seeded when the snapshot was made (the same
// sequence at every load, the reconnect jitter included), and the C library's time zone
// (Emscripten's tzset() runs once) and the `time` module's copy of it are the builder's.
function afterRestore(pyodide) {
    const module = pyodide._module;
    if (typeof module.__tzset_js === "function" && module._tzname && module._timezone) {
        const names = module._tzname >>> 2; // char *tzname[2]: Emscripten's two name buffers
        const [std, dst] = [module.HEAPU32[names], module.HEAPU32[names + 1]];
        module.__tzset_js(module._timezone, module._daylight, std, dst);
    }
    const globals = pyodide.toPy({});
    try {
        pyodide.runPython(AFTER_RESTORE, { globals });
    } finally {
        globals.destroy();
    }
}

// The time zone as CPython's time module computes it at its import (init_timezone in
// Modules/timemodule.c: the local time of a January and a July).
const AFTER_RESTORE = `
import sys
import time

if "random" in sys.modules:
    sys.modules["random"].seed()
YEAR = (365 * 24 + 6) * 3600
jan = time.localtime((int(time.time()) // YEAR) * YEAR)
jul = time.localtime((int(time.time()) // YEAR) * YEAR + YEAR // 2)
janzone, julyzone = -jan.tm_gmtoff, -jul.tm_gmtoff
if janzone < julyzone:  # daylight saving time in January: the southern hemisphere
    time.timezone, time.altzone = julyzone, janzone
    time.tzname = (jul.tm_zone[:9], jan.tm_zone[:9])
else:
    time.timezone, time.altzone = janzone, julyzone
    time.tzname = (jan.tm_zone[:9], jul.tm_zone[:9])
time.daylight = int(janzone != julyzone)
`;

/** The snapshot's URL, from the page's link to it; null when there is none. */
export function snapshotURL(doc = globalThis.document) {
    const link = doc?.querySelector?.("link[data-pyodide-snapshot]");
    return link ? link.href : null;
}

export async function loadPyodide(options = {}) {
    const config = { ...options, indexURL: INDEX_URL };
    const url = snapshotURL();
    if (url) {
        try {
            // A promise: Pyodide awaits it only once its wasm is compiled.
            const snapshot = fetch(url).then((response) => {
                if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
                return response.arrayBuffer();
            });
            snapshot.catch(() => {}); // (reported below, once loadPyodide has awaited it)
            const pyodide = await loadPyodideItself({ ...config, _loadSnapshot: snapshot });
            afterRestore(pyodide);
            performance.mark(RESTORED);
            return pyodide;
        } catch (error) {
            console.warn("Pyodide's memory snapshot could not be used; starting without it.", error);
            performance.mark(REFUSED);
        }
    }
    return loadPyodideItself(config);
}
