// firestore.rules against the official Firestore emulator, with the Firebase web SDK as
// the dashboard uses it (docs/firestore.md, "Security rules").
//
// Run by tests/contract/test_firestore_rules.py, which starts the emulator and sets
// FIRESTORE_EMULATOR_HOST; initializeTestEnvironment loads ../../firestore.rules into a
// project of this run's own. Documents are seeded with rules disabled, shaped as
// shared/vettra/adapters/firestore_repos.py and firestore_sequencer.py write them.
//
// VETTRA_RULES_REAL_SEED (optional): a JSON file naming documents the Python adapter
// itself wrote in VETTRA_RULES_PROJECT; the last suite checks the rules against those.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  assertFails,
  assertSucceeds,
  initializeTestEnvironment,
} from '@firebase/rules-unit-testing';
import {
  addDoc,
  collection,
  collectionGroup,
  deleteDoc,
  doc,
  getDoc,
  getDocs,
  onSnapshot,
  orderBy,
  query,
  setDoc,
  setLogLevel,
  updateDoc,
  where,
  writeBatch,
} from 'firebase/firestore';

// VETTRA_RULES_FILE: another rules file (the pytest side checks that weakened rules fail here).
const RULES = process.env.VETTRA_RULES_FILE || new URL('../../firestore.rules', import.meta.url);
const [host, portText] = (process.env.FIRESTORE_EMULATOR_HOST || '').split(':');
if (!host || !portText) {
  throw new Error('FIRESTORE_EMULATOR_HOST (host:port of a running emulator) is required');
}
const REAL = process.env.VETTRA_RULES_REAL_SEED;
// The seeded suites; a run on the adapter's own documents skips them.
const suite = REAL ? describe.skip : describe;
const PROJECT =
  process.env.VETTRA_RULES_PROJECT || `demo-vettra-rules-${process.pid}-${Date.now()}`;

/** The store's id for a tenant's chain or policy folder (doc_key in firestore_repos.py). */
function docKey(text) {
  const legal =
    text.length > 0 &&
    !text.includes('/') &&
    text !== '.' &&
    text !== '..' &&
    !text.startsWith('~') &&
    !(text.startsWith('__') && text.endsWith('__')) &&
    Buffer.byteLength(text, 'utf8') <= 500;
  return legal ? text : '~' + createHash('sha256').update(text, 'utf8').digest('hex');
}

const PENDING = 'pending';
const ODD_TENANT = 'acme/eu'; // not a legal document id: its chain is stored under "~" + SHA-256

function action(id, tenant, user, { approvers = [], status = PENDING, created = '2026-11-01T10:00:00Z' } = {}) {
  const record = { action_id: id, tenant, user, status, tool: 'send_email', arguments: { to: 'x' } };
  return {
    tenant,
    user,
    status,
    created_at: created,
    expires_at: null,
    approvers,
    record: JSON.stringify(record),
  };
}

function entry(seq, user, actionId) {
  const body = { seq, user, action_id: actionId, type: 'action.created' };
  return {
    seq,
    event_id: `ev${seq}`,
    action_id: actionId,
    user,
    body: JSON.stringify(body),
    hash: 'ab'.repeat(32),
    mac: 'cd'.repeat(32),
    prev_hash: '00'.repeat(32),
  };
}

function item(id, owner, body, created) {
  return { id, owner, created, dates: {}, body: JSON.stringify(body) };
}

const seq = (n) => String(n).padStart(12, '0');

// Every seeded document, by path. The write and unauthenticated-read suites walk all of them.
const SEED = {
  // actions
  'actions/a_alice': action('a_alice', 'acme', 'alice', { created: '2026-11-01T10:00:01Z' }),
  'actions/a_alice_done': action('a_alice_done', 'acme', 'alice', { status: 'approved' }),
  'actions/a_bob_quorum': action('a_bob_quorum', 'acme', 'bob', {
    approvers: ['alice', 'carol'],
    created: '2026-11-01T10:00:02Z',
  }),
  'actions/a_bob': action('a_bob', 'acme', 'bob'),
  'actions/g_alice': action('g_alice', 'globex', 'alice'), // same uid, other tenant
  'actions/g_quorum': action('g_quorum', 'globex', 'bob', { approvers: ['alice'] }),
  // audit chains: chain id = docKey(tenant)
  [`audit_chains/acme/entries/${seq(1)}`]: entry(1, 'alice', 'a_alice'),
  [`audit_chains/acme/entries/${seq(2)}`]: entry(2, 'bob', 'a_bob'),
  [`audit_chains/acme/entries/${seq(3)}`]: entry(3, 'alice', null),
  [`audit_chains/globex/entries/${seq(1)}`]: entry(1, 'alice', 'g_alice'),
  [`audit_chains/${docKey(ODD_TENANT)}/entries/${seq(1)}`]: entry(1, 'erin', 'o_erin'),
  'audit_chains/acme/outbox/ev9': {
    event_id: 'ev9', chain: 'acme', seq: null, type: 'action.created', actor: 'agent:x',
    at: '2026-11-01T10:00:00Z', action_id: 'a_alice', user: 'alice', data: '{}',
  },
  [`audit_chains/acme/checkpoints/${seq(3)}`]: {
    chain: 'acme', size: 3, root: 'ef'.repeat(32), note: 'acme\n3\nroot\n\n— sig\n',
  },
  [`audit_chains/globex/checkpoints/${seq(1)}`]: {
    chain: 'globex', size: 1, root: 'ef'.repeat(32), note: 'globex\n1\nroot\n\n— sig\n',
  },
  'audit_chains/acme/nodes/01-000000000000': { level: 1, index: 0, hash: '12'.repeat(32) },
  'audit_heads/acme': { chain: 'acme', seq: 3, hash: 'ab'.repeat(32), frontier: { size: 3 }, holder: 'h' },
  'audit_leases/acme': { chain: 'acme', holder: 'h', expires_at: 1, renewed_at: 0 },
  // idempotency and policies
  'idempotency/k1': { scope: 'acme:agent', key: 'k', request_digest: 'd', action_id: 'a_alice', created_at: null },
  [`policies/acme/versions/${seq(1)}`]: { tenant: 'acme', version: 1, digest: 'd', envelope: '{}' },
  [`policies/globex/versions/${seq(1)}`]: { tenant: 'globex', version: 1, digest: 'd', envelope: '{}' },
  // sessions: owner = "<tenant>:<user>"
  'docs/sessions/items/ses_alice': item('ses_alice', 'acme:alice', { session_id: 'ses_alice', tenant: 'acme', user: 'alice' }, '01'),
  'docs/sessions/items/ses_bob': item('ses_bob', 'acme:bob', { session_id: 'ses_bob', tenant: 'acme', user: 'bob' }, '02'),
  'docs/sessions/items/ses_g_alice': item('ses_g_alice', 'globex:alice', { session_id: 'ses_g_alice', tenant: 'globex', user: 'alice' }, '03'),
  // tenant "ac:me", user "alice": the owner key "ac:me:alice" also reads as tenant "ac", uid "me:alice"
  'docs/sessions/items/ses_colon': item('ses_colon', 'ac:me:alice', { session_id: 'ses_colon', tenant: 'ac:me', user: 'alice' }, '04'),
  // step-up state: secret, for no client, even its owner
  'docs/stepup_totp/items/acme:alice': item('acme:alice', 'acme:alice', { secret_sealed: 'v1.sealed' }, '05'),
  'docs/stepup_enrolments/items/enr1': item('enr1', 'acme:alice', { secret_sealed: 'v1.sealed' }, '06'),
  'docs/stepup_challenges/items/ch1': item('ch1', 'acme:alice', { challenge: 'c' }, '07'),
  'docs/stepup_challenges_used/items/ch0': item('ch0', 'acme:alice', { at: 't' }, '08'),
  'docs/stepup_grants/items/g1': item('g1', 'acme:alice', { purpose: 'p' }, '09'),
  'docs/stepup_failures/items/acme:alice': item('acme:alice', 'acme:alice', { count: 1 }, '10'),
  'docs/stepup_passkeys/items/pk1': item('pk1', 'acme:alice', { public_key: 'k' }, '11'),
};

// Who asks. Claims as the `auth` function mints them (docs/cloud.md).
const WHO = {
  alice: ['alice', { vettra_role: 'approver', tenant: 'acme' }],
  bob: ['bob', { vettra_role: 'approver', tenant: 'acme' }],
  aliceGlobex: ['alice', { vettra_role: 'approver', tenant: 'globex' }],
  admin: ['dana', { vettra_role: 'admin', tenant: 'acme' }],
  oddAdmin: ['erin', { vettra_role: 'admin', tenant: ODD_TENANT }],
  erin: ['erin', { vettra_role: 'approver', tenant: ODD_TENANT }],
  agentRole: ['alice', { vettra_role: 'agent', tenant: 'acme' }],
  noClaims: ['alice', {}],
  noTenant: ['alice', { vettra_role: 'approver' }],
  colonUid: ['me:alice', { vettra_role: 'approver', tenant: 'ac' }],
};

let env;
const clients = new Map();
/** One Firestore client per caller (a context per call would start an app each time). */
const db = (who) => {
  if (!clients.has(who)) {
    const context =
      who === 'anon' ? env.unauthenticatedContext() : env.authenticatedContext(...WHO[who]);
    clients.set(who, context.firestore());
  }
  return clients.get(who);
};
const ids = (snap) => snap.docs.map((d) => d.id);
const get = (who, path) => getDoc(doc(db(who), path));

// Every denial is expected here; the SDK would log each one as a warning.
setLogLevel('silent');

before(async () => {
  env = await initializeTestEnvironment({
    projectId: PROJECT,
    firestore: { rules: readFileSync(RULES, 'utf8'), host, port: Number(portText) },
  });
  if (REAL) return; // the Python adapter wrote this run's documents
  await env.withSecurityRulesDisabled(async (ctx) => {
    const batch = writeBatch(ctx.firestore());
    for (const [path, data] of Object.entries(SEED)) batch.set(doc(ctx.firestore(), path), data);
    await batch.commit();
  });
});

after(async () => {
  if (!env) return;
  if (!REAL) await env.clearFirestore();
  await env.cleanup();
});

suite('actions: one by id', () => {
  test('an approver reads their own action', async () => {
    const snap = await assertSucceeds(get('alice', 'actions/a_alice'));
    assert.equal(snap.get('user'), 'alice');
  });
  test("an approver cannot read another user's action", async () => {
    await assertFails(get('alice', 'actions/a_bob'));
  });
  test('an action naming the approver in `approvers` is readable', async () => {
    const snap = await assertSucceeds(get('alice', 'actions/a_bob_quorum'));
    assert.deepEqual(snap.get('approvers'), ['alice', 'carol']);
    await assertFails(get('bob', 'actions/a_alice'));
  });
  test("another tenant's action is denied, even with the same uid or a naming quorum", async () => {
    await assertFails(get('alice', 'actions/g_alice'));
    await assertFails(get('alice', 'actions/g_quorum'));
    await assertSucceeds(get('aliceGlobex', 'actions/g_alice'));
    await assertFails(get('aliceGlobex', 'actions/a_alice'));
  });
  test("an admin reads its tenant's actions but not another tenant's", async () => {
    await assertSucceeds(get('admin', 'actions/a_alice'));
    await assertSucceeds(get('admin', 'actions/a_bob'));
    await assertFails(get('admin', 'actions/g_alice'));
  });
  test('a token without the role and tenant claims, or with another role, reads nothing', async () => {
    for (const who of ['agentRole', 'noClaims', 'noTenant', 'anon']) {
      await assertFails(get(who, 'actions/a_alice'));
    }
  });
  test('a missing action is as unreadable as a foreign one', async () => {
    await assertFails(get('alice', 'actions/nope'));
  });
});

suite('actions: the dashboard queries', () => {
  const actions = (who) => collection(db(who), 'actions');
  // The dashboard's two pending lists, as it will run them (docs/firestore.md).
  const pending = (who, tenant, field, op, uid) =>
    query(
      actions(who),
      where('tenant', '==', tenant),
      where(field, op, uid),
      where('status', '==', PENDING),
      orderBy('created_at'),
    );
  const myPending = (who, tenant, uid) => pending(who, tenant, 'user', '==', uid);
  const namingMe = (who, tenant, uid) => pending(who, tenant, 'approvers', 'array-contains', uid);

  test('"my pending actions": tenant, user and status constrained, by created_at', async () => {
    assert.deepEqual(ids(await assertSucceeds(getDocs(myPending('alice', 'acme', 'alice')))), [
      'a_alice',
    ]);
    await assertFails(getDocs(myPending('alice', 'acme', 'bob')));
    await assertFails(getDocs(myPending('alice', 'globex', 'alice')));
  });
  test('"my actions" in every status: tenant and user constrained', async () => {
    const q = query(actions('alice'), where('tenant', '==', 'acme'), where('user', '==', 'alice'));
    assert.deepEqual(ids(await assertSucceeds(getDocs(q))).sort(), ['a_alice', 'a_alice_done']);
  });
  test('"actions naming me as approver": approvers array-contains uid', async () => {
    assert.deepEqual(ids(await assertSucceeds(getDocs(namingMe('alice', 'acme', 'alice')))), [
      'a_bob_quorum',
    ]);
    await assertFails(getDocs(namingMe('alice', 'acme', 'carol')));
    await assertFails(getDocs(namingMe('alice', 'globex', 'alice')));
  });
  test('a listener on "my pending actions" gets them; an unconstrained listener is refused', async () => {
    // the first answer from the server (not the SDK's cache of an earlier query), or its refusal
    const listen = (q) =>
      new Promise((resolve, reject) => {
        const stop = onSnapshot(
          q,
          { includeMetadataChanges: true },
          (snap) => {
            if (snap.metadata.fromCache) return;
            stop();
            resolve(ids(snap));
          },
          reject,
        );
      });
    assert.deepEqual(await listen(myPending('alice', 'acme', 'alice')), ['a_alice']);
    await assert.rejects(listen(actions('alice')), { code: 'permission-denied' });
  });
  test('an unconstrained query is refused', async () => {
    await assertFails(getDocs(actions('alice')));
    await assertFails(getDocs(query(actions('alice'), where('status', '==', PENDING))));
  });
  test('a query missing the tenant, or the user, is refused', async () => {
    await assertFails(getDocs(query(actions('alice'), where('user', '==', 'alice'))));
    await assertFails(getDocs(query(actions('alice'), where('tenant', '==', 'acme'))));
    await assertFails(
      getDocs(query(actions('alice'), where('approvers', 'array-contains', 'alice'))),
    );
  });
  test("a query for another user's or another tenant's actions is refused", async () => {
    await assertFails(
      getDocs(query(actions('alice'), where('tenant', '==', 'acme'), where('user', '==', 'bob'))),
    );
    await assertFails(
      getDocs(query(actions('alice'), where('tenant', '==', 'globex'), where('user', '==', 'alice'))),
    );
    await assertFails(
      getDocs(
        query(
          actions('alice'),
          where('tenant', '==', 'acme'),
          where('approvers', 'array-contains', 'carol'),
        ),
      ),
    );
    await assertFails(
      getDocs(query(actions('alice'), where('tenant', 'in', ['acme', 'globex']), where('user', '==', 'alice'))),
    );
  });
  test("an admin lists its tenant's actions, and only with the tenant constrained", async () => {
    const q = query(actions('admin'), where('tenant', '==', 'acme'), orderBy('created_at'));
    assert.deepEqual(ids(await assertSucceeds(getDocs(q))).sort(), [
      'a_alice',
      'a_alice_done',
      'a_bob',
      'a_bob_quorum',
    ]);
    await assertFails(getDocs(actions('admin')));
    await assertFails(getDocs(query(actions('admin'), where('tenant', '==', 'globex'))));
  });
});

suite('audit entries', () => {
  const entries = (who, tenant = 'acme') => collection(db(who), 'audit_chains', docKey(tenant), 'entries');

  test('an approver reads their own entries by id, not another user\'s or tenant\'s', async () => {
    await assertSucceeds(get('alice', `audit_chains/acme/entries/${seq(1)}`));
    await assertFails(get('alice', `audit_chains/acme/entries/${seq(2)}`));
    await assertFails(get('alice', `audit_chains/globex/entries/${seq(1)}`));
    await assertSucceeds(get('aliceGlobex', `audit_chains/globex/entries/${seq(1)}`));
  });
  test('"my audit trail": user == uid ordered by seq', async () => {
    const q = query(entries('alice'), where('user', '==', 'alice'), orderBy('seq'));
    assert.deepEqual(ids(await assertSucceeds(getDocs(q))), [seq(1), seq(3)]);
  });
  test('an unconstrained, foreign-user or foreign-tenant entries query is refused', async () => {
    await assertFails(getDocs(entries('alice')));
    await assertFails(getDocs(query(entries('alice'), where('user', '==', 'bob'))));
    await assertFails(getDocs(query(entries('alice', 'globex'), where('user', '==', 'alice'))));
  });
  test('a collection-group query across every chain is refused, even constrained to the user', async () => {
    await assertFails(getDocs(query(collectionGroup(db('alice'), 'entries'), where('user', '==', 'alice'))));
    await assertFails(getDocs(collectionGroup(db('admin'), 'entries')));
  });
  test("an admin reads its tenant's whole chain and no other", async () => {
    const all = await assertSucceeds(getDocs(query(entries('admin'), orderBy('seq'))));
    assert.deepEqual(ids(all), [seq(1), seq(2), seq(3)]);
    await assertFails(getDocs(entries('admin', 'globex')));
    await assertFails(get('admin', `audit_chains/globex/entries/${seq(1)}`));
  });
  test('a tenant whose name is not a legal id reads its hashed chain, and others cannot', async () => {
    await assertSucceeds(getDocs(entries('oddAdmin', ODD_TENANT)));
    const own = query(entries('erin', ODD_TENANT), where('user', '==', 'erin'));
    assert.deepEqual(ids(await assertSucceeds(getDocs(own))), [seq(1)]);
    await assertFails(getDocs(entries('admin', ODD_TENANT)));
    await assertFails(getDocs(entries('oddAdmin', 'acme')));
  });
  test('a tenant claim spelling another chain\'s hashed id does not open it', async () => {
    const forged = env
      .authenticatedContext('dana', { vettra_role: 'admin', tenant: docKey(ODD_TENANT) })
      .firestore();
    await assertFails(getDocs(collection(forged, 'audit_chains', docKey(ODD_TENANT), 'entries')));
  });
});

suite('checkpoints, policies and sequencer state', () => {
  test('admins read their tenant\'s signed checkpoints and policy versions; approvers do not', async () => {
    await assertSucceeds(getDocs(collection(db('admin'), 'audit_chains/acme/checkpoints')));
    await assertSucceeds(getDocs(collection(db('admin'), 'policies/acme/versions')));
    await assertFails(get('admin', `audit_chains/globex/checkpoints/${seq(1)}`));
    await assertFails(get('admin', `policies/globex/versions/${seq(1)}`));
    await assertFails(get('alice', `audit_chains/acme/checkpoints/${seq(3)}`));
    await assertFails(get('alice', `policies/acme/versions/${seq(1)}`));
  });
  test('heads, leases, Merkle nodes, the outbox and idempotency keys are for no client', async () => {
    for (const who of ['alice', 'admin']) {
      for (const path of [
        'audit_heads/acme',
        'audit_leases/acme',
        'audit_chains/acme/nodes/01-000000000000',
        'audit_chains/acme/outbox/ev9',
        'idempotency/k1',
      ]) {
        await assertFails(get(who, path));
      }
      for (const path of ['audit_heads', 'audit_leases', 'audit_chains/acme/outbox', 'idempotency']) {
        await assertFails(getDocs(collection(db(who), path)));
      }
    }
    await assertFails(
      getDocs(query(collection(db('alice'), 'audit_chains/acme/outbox'), where('user', '==', 'alice'))),
    );
  });
});

suite('sessions and step-up state', () => {
  const items = (who, coll) => collection(db(who), 'docs', coll, 'items');

  test('an approver reads their own session, not another user\'s or tenant\'s', async () => {
    await assertSucceeds(get('alice', 'docs/sessions/items/ses_alice'));
    await assertFails(get('alice', 'docs/sessions/items/ses_bob'));
    await assertFails(get('alice', 'docs/sessions/items/ses_g_alice'));
    await assertSucceeds(get('aliceGlobex', 'docs/sessions/items/ses_g_alice'));
  });
  test('"my sessions": owner == "<tenant>:<uid>" ordered by created', async () => {
    const q = query(items('alice', 'sessions'), where('owner', '==', 'acme:alice'), orderBy('created'));
    assert.deepEqual(ids(await assertSucceeds(getDocs(q))), ['ses_alice']);
    await assertFails(getDocs(items('alice', 'sessions')));
    await assertFails(getDocs(query(items('alice', 'sessions'), where('owner', '==', 'acme:bob'))));
    await assertFails(getDocs(query(items('alice', 'sessions'), where('owner', '==', 'globex:alice'))));
  });
  test('an admin reads only its own sessions too', async () => {
    await assertFails(get('admin', 'docs/sessions/items/ses_alice'));
    await assertFails(getDocs(query(items('admin', 'sessions'), where('owner', '==', 'acme:alice'))));
  });
  test('a uid or tenant with ":" cannot borrow another pair\'s owner key', async () => {
    await assertFails(get('colonUid', 'docs/sessions/items/ses_colon'));
    await assertFails(getDocs(query(items('colonUid', 'sessions'), where('owner', '==', 'ac:me:alice'))));
  });
  test('step-up documents (sealed TOTP secrets, enrolments, challenges, grants, markers) are for no client', async () => {
    const secret = Object.keys(SEED).filter((p) => p.startsWith('docs/stepup_'));
    assert.ok(secret.length >= 7);
    for (const who of ['alice', 'admin', 'anon']) {
      for (const path of secret) await assertFails(get(who, path));
      for (const coll of new Set(secret.map((p) => p.split('/')[1]))) {
        await assertFails(getDocs(query(items(who, coll), where('owner', '==', 'acme:alice'))));
      }
    }
    await assertFails(getDocs(collectionGroup(db('alice'), 'items')));
  });
});

suite('unauthenticated callers', () => {
  test('read nothing, by id or by query', async () => {
    await Promise.all(Object.keys(SEED).map((path) => assertFails(get('anon', path))));
    await assertFails(
      getDocs(query(collection(db('anon'), 'actions'), where('tenant', '==', 'acme'), where('user', '==', 'alice'))),
    );
    await assertFails(getDocs(collectionGroup(db('anon'), 'entries')));
  });
});

suite('no client writes anything', () => {
  const writers = ['alice', 'admin', 'anon'];
  const paths = Object.keys(SEED);

  test('update, overwrite and delete of every seeded document are denied', async () => {
    const attempts = writers.flatMap((who) =>
      paths.flatMap((path) => [
        assertFails(updateDoc(doc(db(who), path), { status: 'approved' })),
        assertFails(deleteDoc(doc(db(who), path))),
        assertFails(setDoc(doc(db(who), path), SEED[path])),
      ]),
    );
    await Promise.all(attempts);
    await env.withSecurityRulesDisabled(async (ctx) => {
      for (const path of paths) {
        const stored = await getDoc(doc(ctx.firestore(), path));
        assert.deepEqual(stored.data(), SEED[path], `${path} unchanged`);
      }
    });
  });
  test('creating documents is denied in every collection, new or known', async () => {
    const folders = [...new Set(paths.map((p) => p.split('/').slice(0, -1).join('/')))];
    folders.push('users', 'docs/new_collection/items', 'audit_chains/acme/entries_x');
    const own = { tenant: 'acme', user: 'alice', owner: 'acme:alice', status: PENDING };
    const attempts = writers.flatMap((who) =>
      folders.flatMap((folder) => [
        assertFails(setDoc(doc(db(who), `${folder}/created_by_client`), own)),
        assertFails(addDoc(collection(db(who), folder), own)),
      ]),
    );
    await Promise.all(attempts);
    await env.withSecurityRulesDisabled(async (ctx) => {
      for (const folder of folders) {
        const found = await getDocs(collection(ctx.firestore(), folder));
        const seeded = paths.filter((p) => p.startsWith(folder + '/') && p.split('/').length === folder.split('/').length + 1);
        assert.equal(found.size, seeded.length, `${folder}: nothing created`);
      }
    });
  });
  test('an approver cannot decide their own action by writing it', async () => {
    await assertFails(updateDoc(doc(db('alice'), 'actions/a_alice'), { status: 'approved' }));
    await env.withSecurityRulesDisabled(async (ctx) => {
      const stored = await getDoc(doc(ctx.firestore(), 'actions/a_alice'));
      assert.equal(stored.get('status'), PENDING);
    });
  });
});

// Documents the Python adapter wrote (tests/contract/test_firestore_rules.py), read as users.
describe('documents written by the Python adapter', { skip: !REAL && 'no VETTRA_RULES_REAL_SEED' }, () => {
  const real = REAL ? JSON.parse(readFileSync(REAL, 'utf8')) : {};
  const as = ([uid, claims]) => env.authenticatedContext(uid, claims).firestore();

  for (const { path, uid, claims, readable } of real.reads || []) {
    test(`${readable ? 'readable' : 'denied'}: ${path} for ${uid} (${JSON.stringify(claims)})`, async () => {
      const read = getDoc(doc(as([uid, claims]), path));
      if (readable) assert.ok((await assertSucceeds(read)).exists(), `${path} exists`);
      else await assertFails(read);
    });
  }
  for (const { collection: coll, filters, order, uid, claims, expect } of real.queries || []) {
    test(`query ${coll} ${JSON.stringify(filters)} for ${uid}`, async () => {
      const clauses = filters.map(([f, op, v]) => where(f, op, v));
      if (order) clauses.push(orderBy(order));
      const q = query(collection(as([uid, claims]), coll), ...clauses);
      if (expect === null) await assertFails(getDocs(q));
      else assert.deepEqual(ids(await assertSucceeds(getDocs(q))), expect);
    });
  }
});
