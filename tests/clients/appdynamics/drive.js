// Drives the npm client appdynamics-analytics-events-api against a running gateway and prints what it saw as
// one JSON document (tests/appdynamics/test_http_npm_client.py asserts on it).
// Usage: node drive.js <url> <account> <key> <schema name>
const { connectAnalyticsAPI } = require('appdynamics-analytics-events-api')

const [url, account, key, name] = process.argv.slice(2)

async function main () {
  const out = {}
  const api = connectAnalyticsAPI(url, account, key)
  try {
    await api.retrieveSchema(name)
    out.before = 'exists'
  } catch (error) {
    out.before = { code: error.code, statusCode: error.statusCode, message: error.message }
  }
  const definition = { account: 'integer', amount: 'float', product: 'string' }
  const schema = await api.with(name, definition)
  out.created = { name: schema.name, definition: schema.definition }
  out.retrieved = (await api.retrieveSchema(name)).definition
  out.again = (await api.with(name, { other: 'string' })).definition // exists: retrieved, not created
  out.published = await schema.publish([
    { account: 13, amount: 13.03, product: 'test' },
    { account: 14, amount: 2.5, product: 'other' }
  ])
  out.single = await schema.publish({ account: 15, amount: 1, product: 'third' })
  try {
    await schema.publish({ account: 'not a number' })
    out.badPublish = 'accepted'
  } catch (error) {
    out.badPublish = { code: error.code, statusCode: error.statusCode, message: error.message }
  }
  out.rows = await schema.query(`SELECT * from ${name}`)
  out.count = await schema.query([{ label: 'n', query: `SELECT product, count(*) FROM ${name} ORDER BY product` }])
  out.deleted = await schema.delete()
  try {
    await api.retrieveSchema(name)
    out.after = 'exists'
  } catch (error) {
    out.after = { code: error.code, statusCode: error.statusCode }
  }
  process.stdout.write(JSON.stringify(out))
}

main().catch(error => {
  process.stderr.write(`failed: ${error && error.stack ? error.stack : JSON.stringify(error)}\n`)
  process.exit(1)
})
