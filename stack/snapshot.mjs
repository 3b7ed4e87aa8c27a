// Make a Pyodide memory snapshot (run by stack/snapshot.py with the venv's Node 22):
//
//     node stack/snapshot.mjs <folder of pyodide.mjs> <output file>   (Python code on stdin)
//
// Pyodide starts as it does in the page (no packages, no options but the snapshot's), runs the
// Python read from stdin (imports only: nothing that touches JavaScript objects, which Node
// does not share with a browser), and writes its memory. The page's loader
// (static/pyodide-loader.mjs) hands the file to loadPyodide's _loadSnapshot.
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [folder, output] = process.argv.slice(2);
if (!folder || !output) {
    console.error("usage: node snapshot.mjs <folder of pyodide.mjs> <output file> < code.py");
    process.exit(2);
}
const indexURL = folder.endsWith("/") ? folder : folder + "/";
const { loadPyodide } = await import(pathToFileURL(indexURL + "pyodide.mjs").href);
const pyodide = await loadPyodide({ indexURL, _makeSnapshot: true });
const globals = pyodide.toPy({});
try {
    pyodide.runPython(readFileSync(0, "utf8"), { globals });
} finally {
    globals.destroy();
}
writeFileSync(output, pyodide.makeMemorySnapshot());
