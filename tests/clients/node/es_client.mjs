// Runs the official Node client against a gateway and prints what it saw as one JSON object.
// usage: node es_client.mjs <es8|es9> <gateway url> <ApiKey value>
// The steps are the seed document's examples ("Post Event to an Analytics Collection": transport.request
// with its search_click body) and the typed API (searchApplication.postBehavioralAnalyticsEvent), plus
// info() and ping(), and the errors a client must be able to read (404, 401 for an ApiKey without an id).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const [, , pkg, url, apiKey] = process.argv;
const { Client, errors } = require(pkg);
const client = new Client({ node: url, auth: { apiKey }, maxRetries: 0, requestTimeout: 15000 });
const manifest = new URL(`./node_modules/${pkg}/package.json`, import.meta.url);
const out = { client: JSON.parse(readFileSync(manifest, "utf8")).version };

const failure = (err) => err instanceof errors.ResponseError
  ? { name: err.name, statusCode: err.statusCode, body: err.body }
  : { name: err.name, message: err.message };

try {
  const info = await client.info({}, { meta: true });
  out.info = { statusCode: info.statusCode, body: info.body, product: info.headers["x-elastic-product"] };
  out.ping = await client.ping();

  await client.searchApplication.putBehavioralAnalytics({ name: "my_analytics_collection" });

  // the seed document's Node example, verbatim
  const response = await client.transport.request({ method: "POST", path: "/_application/analytics/my_analytics_collection/event/search_click", body: { session: { id: "1797ca95-91c9-4e2e-b1bd-9c38e6f386a9", }, user: { id: "5f26f01a-bbee-4202-9298-81261067abbd", }, search: { query: "search term", results: { items: [ { document: { id: "123", index: "products", }, }, ], total_results: 10, }, sort: { name: "relevance", }, search_application: "website", }, document: { id: "123", index: "products", }, }, });
  out.transport = response;

  const posted = await client.searchApplication.postBehavioralAnalyticsEvent({
    collection_name: "my_analytics_collection", event_type: "page_view", debug: true,
    payload: { session: { id: "node-session" }, user: { id: `node-user-${pkg}` },
      page: { url: "https://shop.example/p/1", title: "P1" } },
  }, { meta: true });
  out.posted = { statusCode: posted.statusCode, body: posted.body, contentType: posted.headers["content-type"] };

  try {
    await client.searchApplication.postBehavioralAnalyticsEvent({
      collection_name: "ghost", event_type: "page_view",
      payload: { session: { id: "s" }, user: { id: "u" }, page: { url: "https://shop.example/" } },
    });
    out.missing = { name: "no error" };
  } catch (err) {
    out.missing = failure(err);
  }

  const idless = new Client({ node: url, auth: { apiKey: Buffer.from("only-a-secret").toString("base64") },
    maxRetries: 0 });
  try {
    await idless.info();
    out.idless = { name: "no error" };
  } catch (err) {
    out.idless = failure(err);
  }
  await idless.close();
} catch (err) {
  out.error = failure(err);
} finally {
  await client.close();
}
console.log(JSON.stringify(out));
