// Drives fusillade with the official openai npm package, unmodified: a streamed upload
// (fs.createReadStream: chunked, no Content-Length), files.waitForProcessing, batch creation,
// polling, download, auto-paging lists and typed errors. local/stack's TestNodeSDK starts the
// stack and runs this with OPENAI_BASE_URL and OPENAI_API_KEY set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI, { BadRequestError, NotFoundError } from 'openai';

const client = new OpenAI({ maxRetries: 0 });

function writeLines(name, lines) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusillade-node-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  return file;
}

function chat(i) {
  return { custom_id: `node-${i}`, method: 'POST', url: '/v1/chat/completions',
    body: { model: 'mock-chat', messages: [{ role: 'user', content: `hello ${i}` }] } };
}

async function waitBatch(id) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const b = await client.batches.retrieve(id);
    if (['completed', 'failed', 'cancelled', 'expired'].includes(b.status)) return b;
    assert.ok(Date.now() < deadline, `batch ${id} still ${b.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('streamed upload, batch, poll, download', async () => {
  const file = writeLines('input.jsonl', Array.from({ length: 12 }, (_, i) => chat(i)));
  const uploaded = await client.files.create({ file: fs.createReadStream(file), purpose: 'batch' });
  assert.match(uploaded.id, /^file-/);
  assert.equal(uploaded.filename, 'input.jsonl');
  assert.equal(uploaded.purpose, 'batch');

  const ready = await client.files.waitForProcessing(uploaded.id, { pollInterval: 100, maxWait: 10_000 });
  assert.equal(ready.status, 'processed');
  assert.equal(ready.bytes, fs.statSync(file).size);

  const created = await client.batches.create({ input_file_id: uploaded.id, endpoint: '/v1/chat/completions',
    completion_window: '24h', metadata: { sdk: 'node' } });
  assert.match(created.id, /^batch_/);
  assert.equal(created.status, 'validating');
  assert.deepEqual(created.metadata, { sdk: 'node' });

  const done = await waitBatch(created.id);
  assert.equal(done.status, 'completed');
  assert.deepEqual(done.request_counts, { total: 12, completed: 12, failed: 0 });
  assert.equal(done.model, 'mock-chat');
  assert.equal(done.error_file_id, null);

  const content = await client.files.content(done.output_file_id);
  const lines = (await content.text()).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 12);
  assert.deepEqual(new Set(lines.map((l) => l.custom_id)), new Set(Array.from({ length: 12 }, (_, i) => `node-${i}`)));
  for (const l of lines) {
    assert.equal(l.response.status_code, 200);
    assert.equal(l.error, null);
  }
});

test('lists page with has_more and after', async () => {
  const ids = [];
  for (let i = 0; i < 3; i++) {
    const f = await client.files.create({ file: fs.createReadStream(writeLines(`l${i}.jsonl`, [chat(i)])), purpose: 'batch' });
    ids.push((await client.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' })).id);
  }
  const seen = [];
  for await (const b of client.batches.list({ limit: 1 })) seen.push(b.id);
  for (const id of ids) assert.ok(seen.includes(id), `listed ${id}`);
  assert.equal(new Set(seen).size, seen.length, 'no batch twice');

  const files = [];
  for await (const f of client.files.list({ limit: 2, purpose: 'batch' })) files.push(f.id);
  assert.ok(files.length >= 4);
  for (const id of ids) await waitBatch(id);
});

test('errors are typed with OpenAI status codes and messages', async () => {
  const missing = 'batch_' + '0'.repeat(32);
  await assert.rejects(client.batches.retrieve(missing), (e) =>
    e instanceof NotFoundError && e.status === 404 && e.message.includes(`No batch found with id '${missing}'.`));
  await assert.rejects(client.files.retrieve('file-' + 'A'.repeat(24)), (e) => e instanceof NotFoundError && e.status === 404);
  // An id without its kind's shape cannot name anything: 400, which the SDK does not retry.
  await assert.rejects(client.batches.retrieve('batch_missing'), (e) => e instanceof BadRequestError && e.param === 'id');
  const bad = writeLines('bad.jsonl', [chat(1), { custom_id: 'x', method: 'GET', url: '/v1/chat/completions', body: { model: 'mock-chat' } }]);
  await assert.rejects(client.files.create({ file: fs.createReadStream(bad), purpose: 'batch' }), (e) =>
    e instanceof BadRequestError && e.status === 400 && e.code === 'invalid_method' && e.message.includes('line 2: method must be "POST"'));
  const ok = await client.files.create({ file: fs.createReadStream(writeLines('ok.jsonl', [chat(1)])), purpose: 'batch' });
  await assert.rejects(client.batches.create({ input_file_id: ok.id, endpoint: '/v1/chat/completions', completion_window: '5d' }),
    (e) => e instanceof BadRequestError && e.param === 'completion_window');
});

test('a file above the inline cap downloads through the 302 to S3', async () => {
  // ~4.2 MB: under the 4.5 MB direct-upload cap, over the 4 MB inline-response cap.
  const pad = 'p'.repeat(4000);
  const rows = [];
  for (let i = 0; rows.length * 4100 < 4_200_000; i++) {
    rows.push({ custom_id: `big-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'mock-chat', pad } });
  }
  const file = writeLines('big.jsonl', rows);
  const f = await client.files.create({ file: fs.createReadStream(file), purpose: 'batch' });
  const res = await client.files.content(f.id);
  assert.ok(res.redirected, 'served by a redirect');
  assert.equal(await res.text(), fs.readFileSync(file, 'utf8'));
});
