// Drives fusillade's Message Batches routes with the official @anthropic-ai/sdk package,
// unmodified: create with inline requests, retrieve and poll, auto-paging list, results through
// messages.batches.results (the SDK follows results_url), cancel, delete and typed errors.
// local/stack's TestNodeSDK starts the stack and runs this with ANTHROPIC_BASE_URL (the API's
// origin), ANTHROPIC_API_KEY, ANTHROPIC_MODEL (served by the mock upstream's /v1/messages) and
// ANTHROPIC_PARKED_MODEL (a model with no slots, so its batches wait to be cancelled).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic, { AuthenticationError, BadRequestError, NotFoundError } from '@anthropic-ai/sdk';

const client = new Anthropic({ maxRetries: 0 });
const model = process.env.ANTHROPIC_MODEL;
const parked = process.env.ANTHROPIC_PARKED_MODEL;

function request(id, m, extra = {}) {
  return { custom_id: id, params: { model: m, max_tokens: 32, messages: [{ role: 'user', content: `hello ${id}` }], ...extra } };
}

async function waitEnded(id) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const b = await client.messages.batches.retrieve(id);
    if (b.processing_status === 'ended') return b;
    assert.ok(Date.now() < deadline, `message batch ${id} still ${b.processing_status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function resultsOf(id) {
  const out = new Map();
  for await (const line of await client.messages.batches.results(id)) {
    assert.ok(!out.has(line.custom_id), `one line per request: ${line.custom_id}`);
    out.set(line.custom_id, line.result);
  }
  return out;
}

test('create, retrieve, list, results', async () => {
  const created = await client.messages.batches.create({
    requests: [request('ok-1', model), request('refused', model, { mock_status: 400 }), request('ok-2', model)],
  });
  assert.match(created.id, /^msgbatch_[0-9a-f]{32}$/);
  assert.equal(created.type, 'message_batch');
  assert.equal(created.processing_status, 'in_progress');
  assert.equal(created.results_url, null);
  assert.equal(created.request_counts.processing, 3);

  const done = await waitEnded(created.id);
  assert.deepEqual(done.request_counts, { processing: 0, succeeded: 2, errored: 1, canceled: 0, expired: 0 });
  assert.ok(done.ended_at);
  assert.ok(done.results_url.startsWith(process.env.ANTHROPIC_BASE_URL), done.results_url);

  const results = await resultsOf(created.id);
  assert.equal(results.size, 3);
  assert.equal(results.get('ok-1').type, 'succeeded');
  assert.equal(results.get('ok-1').message.type, 'message');
  assert.equal(results.get('ok-1').message.role, 'assistant');
  assert.match(results.get('ok-1').message.content[0].text, /Mock reply/);
  assert.equal(results.get('ok-2').type, 'succeeded');
  assert.equal(results.get('refused').type, 'errored');
  assert.equal(results.get('refused').error.error.type, 'invalid_request_error');

  // Auto-paging: one batch per page, newest first, until has_more is false.
  const second = await client.messages.batches.create({ requests: [request('x', model)] });
  const seen = [];
  for await (const b of client.messages.batches.list({ limit: 1 })) seen.push(b.id);
  assert.deepEqual(seen.slice(0, 2), [second.id, created.id]);
  const page = await client.messages.batches.list({ limit: 1 });
  assert.equal(page.data.length, 1);
  assert.equal(page.has_more, true);
  assert.equal(page.first_id, second.id);
  await waitEnded(second.id);
});

test('cancel, then delete', async () => {
  const b = await client.messages.batches.create({ requests: [request('p1', parked), request('p2', parked)] });
  await assert.rejects(client.messages.batches.delete(b.id), BadRequestError, 'a running batch is not deleted');
  await assert.rejects(client.messages.batches.results(b.id), /results_url/, 'no results before it ended');
  const canceling = await client.messages.batches.cancel(b.id);
  assert.ok(['canceling', 'ended'].includes(canceling.processing_status), canceling.processing_status);
  assert.ok(canceling.cancel_initiated_at);
  const ended = await waitEnded(b.id);
  assert.equal(ended.request_counts.canceled, 2);
  const results = await resultsOf(b.id);
  assert.deepEqual(results.get('p1'), { type: 'canceled' });
  assert.deepEqual(results.get('p2'), { type: 'canceled' });

  const again = await client.messages.batches.cancel(b.id);
  assert.equal(again.processing_status, 'ended', 'cancelling an ended batch answers it');
  const deleted = await client.messages.batches.delete(b.id);
  assert.deepEqual(deleted, { id: b.id, type: 'message_batch_deleted' });
  await assert.rejects(client.messages.batches.retrieve(b.id), NotFoundError);
});

test('typed errors', async () => {
  await assert.rejects(client.messages.batches.create({ requests: [] }), (err) => {
    assert.ok(err instanceof BadRequestError);
    assert.equal(err.type, 'invalid_request_error');
    assert.ok(err.requestID?.startsWith('req_'), err.requestID);
    return true;
  });
  await assert.rejects(client.messages.batches.retrieve('msgbatch_00000000000000000000000000000000'), NotFoundError);
  const wrong = new Anthropic({ apiKey: 'fsk_wrong', maxRetries: 0 });
  await assert.rejects(wrong.messages.batches.list(), AuthenticationError);
});
