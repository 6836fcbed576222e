// The Node.js webhook receiver `benches/ingest` measures against (issue 15): Express and
// HubSpot's official SDK (`@hubspot/api-client`'s `Signature.isValid`, v3), as HubSpot's
// documentation shows it. The body is kept raw (the signature covers its exact bytes), checked,
// parsed, and the answer is 204. No logging. Usage: `node server.js PORT CLIENT_SECRET`
// (`npm ci` in this directory first).
'use strict';

const express = require('express');
const { Signature } = require('@hubspot/api-client');

const [port, clientSecret] = process.argv.slice(2);
if (!port || !clientSecret) {
  console.error('usage: node server.js PORT CLIENT_SECRET');
  process.exit(2);
}

const app = express();
app.post('/webhooks/hubspot', express.raw({ type: '*/*', limit: '256kb' }), (req, res) => {
  const requestBody = req.body instanceof Buffer ? req.body.toString('utf8') : '';
  let valid = false;
  try {
    valid = Signature.isValid({
      signatureVersion: 'v3',
      signature: req.get('X-HubSpot-Signature-v3'),
      method: req.method,
      clientSecret,
      requestBody,
      url: `http://${req.get('host')}${req.originalUrl}`,
      timestamp: req.get('X-HubSpot-Request-Timestamp'),
    });
  } catch (e) {
    valid = false; // a stale or missing timestamp
  }
  if (!valid) {
    res.status(401).end();
    return;
  }
  let events;
  try {
    events = JSON.parse(requestBody);
  } catch (e) {
    res.status(400).end();
    return;
  }
  if (!Array.isArray(events)) {
    res.status(400).end();
    return;
  }
  res.status(204).end();
});

app.listen(Number(port), '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`));
