/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports['test/route.test.ts > TAP > route table: printed policy per route > fastify route tree 1'] = `
├── /healthz (GET, HEAD)
├── /readyz (GET, HEAD)
├── /a (DELETE, GET, HEAD, PATCH, POST, PUT, OPTIONS)
│   └── * (DELETE, GET, HEAD, PATCH, POST, PUT, OPTIONS)
└── /b (DELETE, GET, HEAD, PATCH, POST, PUT, OPTIONS)
    └── * (DELETE, GET, HEAD, PATCH, POST, PUT, OPTIONS)

`

exports['test/route.test.ts > TAP > route table: printed policy per route > route table 1'] = `
Array [
  Object {
    "auth": "any configured",
    "hosts": Array [],
    "inspect": "block",
    "openapi": "off",
    "prefix": "/a",
    "rateLimit": "100/1 minute",
    "targets": Array [
      "http://127.0.0.1:1",
    ],
    "websocket": false,
  },
  Object {
    "auth": "jwt scopes=read",
    "hosts": Array [],
    "inspect": "detect+body",
    "openapi": "detect",
    "prefix": "/b",
    "rateLimit": "off",
    "targets": Array [
      "http://127.0.0.1:1",
      "http://127.0.0.1:2",
    ],
    "websocket": true,
  },
]
`
