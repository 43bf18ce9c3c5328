// node-postgres (pg + pg-pool) and knex through the gateway, for the driver matrix: types
// round trip, each tenant sees only its rows, a pool reused across queries, a knex query,
// and two pools with their own TimeZone (startup options) interleaved on a pool of one.
// Then the same tenants through a service login's pool and knex, each transaction choosing
// its tenant with SET LOCAL bulkhead.tenant. Usage: node matrix_node.js HOST PORT DBNAME
// KEY... with MATRIX_SERVICE_USER, MATRIX_SERVICE_PASSWORD and MATRIX_TENANTS (the keys'
// tenants, in order).
const { Pool } = require('pg');
const knex = require('knex');
const assert = require('assert');

const [host, port, database, ...keys] = process.argv.slice(2);
const pool = (password, extra = {}) =>
  new Pool({ host, port: Number(port), database, user: 'app', password, max: 2, ...extra });

// SET takes no parameters: the slug goes in as a literal, quoted by the driver.
const choose = (client, tenant) =>
  client.query(`SET LOCAL bulkhead.tenant = ${client.escapeLiteral(tenant)}`);

async function serviceLogin() {
  const user = process.env.MATRIX_SERVICE_USER;
  const password = process.env.MATRIX_SERVICE_PASSWORD;
  const tenants = process.env.MATRIX_TENANTS.split(' ');
  const p = new Pool({ host, port: Number(port), database, user, password, max: 2 });
  const inTenant = async (tenant, work) => {
    const c = await p.connect();
    try {
      await c.query('BEGIN');
      await choose(c, tenant);
      const out = await work(c);
      await c.query('COMMIT');
      return out;
    } catch (e) {
      await c.query('ROLLBACK');
      throw e;
    } finally {
      c.release();
    }
  };
  for (const t of tenants) {
    await inTenant(t, (c) => c.query('INSERT INTO customers (id, name) VALUES ($1, $2)', [900, `svc-${t}`]));
  }
  for (let i = 0; i < 2; i++) {
    for (const t of tenants) {
      const { rows } = await inTenant(t, (c) =>
        c.query({ name: 'svc-names', text: 'SELECT name FROM customers WHERE name LIKE $1', values: ['svc-%'] }));
      assert.deepStrictEqual(rows.map((x) => x.name), [`svc-${t}`]);
    }
  }
  await assert.rejects(p.query('SELECT name FROM customers'), (e) => e.code === '42501' && /no tenant/.test(e.message));
  await p.end();
  // knex: a transaction whose first statement names the tenant.
  const k = knex({ client: 'pg', connection: { host, port: Number(port), database, user, password } });
  for (const t of tenants) {
    await k.transaction(async (trx) => {
      await trx.raw(`SET LOCAL bulkhead.tenant = '${t.replace(/'/g, "''")}'`);
      const found = await trx('customers').where('name', 'like', 'svc-%').select('name');
      assert.deepStrictEqual(found.map((x) => x.name), [`svc-${t}`]);
      await trx('customers').where('id', 900).del();
    });
  }
  await k.destroy();
}

(async () => {
  for (const [n, key] of keys.entries()) {
    const p = pool(key);
    const { rows: [r] } = await p.query(
      'SELECT $1::int AS a, $2::bigint AS b, $3::numeric AS c, $4::text AS d, $5::bool AS e,' +
        ' $6::timestamptz AS f, $7::uuid AS g, $8::jsonb AS h, $9::bytea AS i, $10::int[] AS j, $11::text AS k',
      [7, '1099511627776', '12.345', 'tëxt', true, new Date('2020-01-02T00:00:00Z'),
        '12345678-1234-5678-1234-567812345678', JSON.stringify({ a: [1] }), Buffer.from([0, 255]), [1, 2], null]);
    assert.deepStrictEqual(
      [r.a, r.b, r.c, r.d, r.e, r.f.toISOString(), r.g, r.h, [...r.i], r.j, r.k],
      [7, '1099511627776', '12.345', 'tëxt', true, '2020-01-02T00:00:00.000Z',
        '12345678-1234-5678-1234-567812345678', { a: [1] }, [0, 255], [1, 2], null]);
    await p.query('INSERT INTO customers (id, name) VALUES ($1, $2)', [n, `mine-${n}`]);
    for (let i = 0; i < 10; i++) {
      const { rows } = await p.query({ name: 'names', text: 'SELECT name FROM customers' });
      assert.deepStrictEqual(rows.map((x) => x.name), [`mine-${n}`]);
    }
    const k = knex({ client: 'pg', connection: { host, port: Number(port), database, user: 'app', password: key } });
    const found = await k('customers').where('id', n).select('name');
    assert.deepStrictEqual(found.map((x) => x.name), [`mine-${n}`]);
    await k.destroy();
    await p.query('DELETE FROM customers');
    await p.end();
  }
  const a = pool(keys[0], { options: '-c TimeZone=America/New_York' });
  const b = pool(keys[keys.length - 1], { options: '-c TimeZone=Asia/Tokyo' });
  for (let i = 0; i < 3; i++) {
    assert.strictEqual((await a.query('SHOW TimeZone')).rows[0].TimeZone, 'America/New_York');
    assert.strictEqual((await b.query('SHOW TimeZone')).rows[0].TimeZone, 'Asia/Tokyo');
  }
  await a.end();
  await b.end();
  await serviceLogin();
  console.log('ok');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
