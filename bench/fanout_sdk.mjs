// The fan-out benchmark's Node side (bench/fanout.py): N realtime clients of @directus/sdk 26
// in one Node 22 process, spread over the given Directus URLs, each subscribed to create
// events of `messages`. Prints READY once every subscription's init arrived; on a line
// COUNT on stdin, prints how many events came so far; on a line
// STOP, prints one JSON line: the delivery latencies (ms, from the time the writer
// put in the text) and how many events came.
//
// node bench/fanout_sdk.mjs <sdk entry> <token> <n> <url> [<url> ...]

const [sdkPath, token, size, ...urls] = process.argv.slice(2);
const { createDirectus, staticToken, realtime } = await import(sdkPath);
const n = Number(size);
// FANOUT_SDK_LISTENER=1: count the frames in an onWebSocket("message") listener instead of the
// subscription's async generator, which waits for each message with a listener of its own
// and so misses the frames that arrive before it asks for the next one.
const listener = process.env.FANOUT_SDK_LISTENER === "1";
const latencies = [];
let inits = 0;
let events = 0;

function count(message) {
  const now = Date.now();
  if (message.event === "init") {
    inits += 1;
    if (inits === n) console.log("READY");
    return;
  }
  if (message.event !== "create") return;
  for (const row of message.data || []) {
    const sent = Number(String(row.text).split(" ")[1]);
    if (sent) latencies.push(now - sent);
    events += 1;
  }
}

// The guide's way: `for await (const item of subscription)`.
async function follow(subscription) {
  for await (const message of subscription) count(message);
}

const clients = [];
for (let i = 0; i < n; i += 1) {
  const client = createDirectus(urls[i % urls.length])
    .with(staticToken(token))
    .with(realtime({ authMode: "handshake", reconnect: false }));
  clients.push(client);
}
// Connect in batches (a thousand handshakes at once time out on a 2-core machine).
for (let i = 0; i < n; i += 50) {
  await Promise.all(
    clients.slice(i, i + 50).map(async (client) => {
      // A handshake refused or timed out on a loaded server is tried again, like the Python
      // side's client does by itself.
      for (let attempt = 1; ; attempt += 1) {
        try {
          await client.connect();
          break;
        } catch (error) {
          console.error(`connect attempt ${attempt}: ${error}`);
          // The SDK takes the first message after its auth for the answer: a ping there fails
          // connect() but leaves the socket open and signed in, and refuses a new connect().
          if (String(error).includes('state is "open"')) break;
          if (attempt >= 5) throw error;
          await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
        }
      }
      if (listener) {
        client.onWebSocket("message", (message) => {
          if (message.type === "subscription") count(message);
        });
      }
      // type and collection first: the SDK keeps these keys where they are and adds uid last,
      // so its frame is the Python client's byte for byte (query.fields as "id,text").
      const { subscription } = await client.subscribe("messages", {
        type: "subscribe",
        collection: "messages",
        event: "create",
        query: { fields: ["id", "text"] },
      });
      if (!listener) follow(subscription).catch((error) => console.error(`subscription: ${error}`));
    }),
  );
}

process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  if (chunk.includes("COUNT")) console.log(String(events));
  if (!chunk.includes("STOP")) return;
  for (const client of clients) client.disconnect();
  // Node writes to a pipe asynchronously: exit once the (long) line is out.
  process.stdout.write(JSON.stringify({ events, latencies }) + "\n", () => process.exit(0));
});
