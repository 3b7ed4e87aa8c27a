// The <script> of Directus's guide "Connect to Realtime Data", as written, for `make bench`.
//
// Changes from the guide, each only what a side-by-side benchmark needs:
// - the SDK (@directus/sdk 26.0.0) is imported from this server's copy, not from unpkg;
// - the Directus URL and token come from the query string (?url=...&token=...);
// - the subscription asks for id and date_created too (the guide: user, text), so rows can
//   carry data-id; each item is rendered as our page renders it (li.message[data-id]
//   with .user, .text and a <time>, set as text);
// - body[data-subscribed] is set when the subscription's first (init) message arrives;
// - ?history=N reads the latest N messages over REST, renders them, sets body[data-history];
// - window.create_item(text, user) calls the guide's createItem (fire and forget) and returns
//   Promise.resolve(), like our page's create_item returns a Promise;
// - the onWebSocket logging is registered before the for-await loop (after it, it would never
//   run) and before connect(), so 'Connection is open' is logged.
import { createDirectus, staticToken, realtime } from '/static/runtime/sdk/index.js';

const params = new URLSearchParams(window.location.search);
const url = params.get('url');
const token = params.get('token');
const history = Number(params.get('history') || 0);
const fields = ['id', 'user', 'text', 'date_created'];
const list = document.getElementById('messages');

function render(item) {
    const row = document.createElement('li');
    row.className = 'message';
    row.dataset.id = String(item.id);
    row.dataset.created = item.date_created || '';
    for (const name of ['user', 'text']) {
        const cell = document.createElement('span');
        cell.className = name;
        cell.textContent = String(item[name] ?? '');
        row.append(cell);
    }
    const when = document.createElement('time');
    if (item.date_created) {
        when.dateTime = item.date_created;
        when.textContent = new Date(item.date_created).toLocaleTimeString();
    }
    row.append(when);
    list.append(row);
}

async function loadHistory(limit) {
    const query = new URLSearchParams({ sort: '-date_created', limit: String(limit), fields: fields.join(',') });
    const response = await fetch(`${url}/items/messages?${query}`, {
        headers: { Authorization: `Bearer ${token}` },
    });
    const { data } = await response.json();
    for (const item of data.reverse()) render(item);
    document.body.dataset.history = 'true';
}

if (history > 0) {
    loadHistory(history).catch((error) => console.error(error));
}

// ----- the guide -----

const directus = createDirectus(url)
    .with(staticToken(token))
    .with(realtime());

directus.onWebSocket('open', function () {
    console.log('Connection is open');
});

directus.onWebSocket('message', function (message) {
    console.log('New message of type ' + message.type);
    console.log(message.data);
});

directus.onWebSocket('close', function () {
    console.log('Connection has closed');
});

directus.onWebSocket('error', function (error) {
    console.log('Connection has had an error');
    console.log(error);
});

await directus.connect();

const { subscription } = await directus.subscribe('messages', {
    event: 'create',
    query: { fields },
});

function createItem(text, user) {
    directus.sendMessage({
        type: 'items',
        collection: 'messages',
        action: 'create',
        data: { text, user },
    });
}

window.create_item = (text, user) => {
    createItem(text, user);
    return Promise.resolve();
};

for await (const item of subscription) {
    console.log(item);
    if (item.event === 'init') document.body.dataset.subscribed = 'true';
    for (const row of item.data || []) render(row);
}
