// The synthetic realtime server of `python -m bench fanout --synthetic`: it speaks the part of
// Directus's realtime protocol a subscriber sees (handshake `auth`, `subscribe` -> `init`,
// `create` events, `ping` -> `pong`), with nothing behind it, so that a fan-out run measures the
// client process and not Directus or its database.
//
// node bench/fanout_server.mjs <ws module> <port>
//
// Prints LISTENING once it accepts connections. Commands on stdin, one a line:
//   PUSH <creates> <per second>  each create goes to every subscribed socket at once, as
//                                Directus's bus fans one event out; prints DONE <creates> <ms>
//                                (the push's own duration) when the last one has been sent
//   FRAMES                       prints one JSON line: the distinct subscribe frames received
//                                (their uid replaced by "<uid>"), with how many sockets sent each
// Each create's row is {"id": <n>, "text": "fanout <Date.now() at send>"}, the writer's format
// in the cluster run, which both clients parse for the latency.

const [wsPath, port] = process.argv.slice(2);
const { WebSocketServer } = await import(wsPath);

const subscribers = []; // [socket, uid-as-sent]
const frames = new Map(); // subscribe frame with "<uid>" -> count
let nextId = 1;

const server = new WebSocketServer({ host: "127.0.0.1", port: Number(port), path: "/websocket" });
server.on("connection", (socket) => {
  socket.on("message", (raw) => {
    const text = raw.toString();
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.type === "auth") {
      socket.send(JSON.stringify({ type: "auth", status: "ok" }));
    } else if (message.type === "ping") {
      socket.send(JSON.stringify({ type: "pong", uid: message.uid }));
    } else if (message.type === "subscribe") {
      const shape = text.replace(JSON.stringify(message.uid), '"<uid>"');
      frames.set(shape, (frames.get(shape) || 0) + 1);
      subscribers.push([socket, JSON.stringify(message.uid)]);
      socket.send(JSON.stringify({ type: "subscription", event: "init", uid: message.uid }));
    }
  });
  socket.on("close", () => {
    for (let i = subscribers.length - 1; i >= 0; i -= 1) {
      if (subscribers[i][0] === socket) subscribers.splice(i, 1);
    }
  });
});
server.on("listening", () => console.log("LISTENING"));

function push(creates, perSecond) {
  const t0 = performance.now();
  let sent = 0;
  const tick = () => {
    const row = JSON.stringify([{ id: nextId++, text: `fanout ${Date.now()}` }]);
    // One serialisation per event, as Directus does per subscriber query; the uid differs.
    const head = '{"type":"subscription","event":"create","data":' + row + ',"uid":';
    for (const [socket, uid] of subscribers) socket.send(head + uid + "}");
    sent += 1;
    if (sent >= creates) {
      console.log(`DONE ${sent} ${Math.round(performance.now() - t0)}`);
      return;
    }
    // Paced from the start, so a late tick does not slow the rate down.
    setTimeout(tick, Math.max(0, t0 + (sent * 1000) / perSecond - performance.now()));
  };
  tick();
}

let buffered = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  buffered += chunk;
  let newline;
  while ((newline = buffered.indexOf("\n")) >= 0) {
    const [command, ...rest] = buffered.slice(0, newline).trim().split(/\s+/);
    buffered = buffered.slice(newline + 1);
    if (command === "PUSH") push(Number(rest[0]), Number(rest[1]));
    else if (command === "FRAMES") console.log(JSON.stringify(Object.fromEntries(frames)));
  }
});
process.stdin.on("end", () => process.exit(0));
