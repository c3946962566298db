// node-oidc-provider as a client-credentials authorization server, run the
// way node services run in production on a small machine: a `cluster` of
// PEER_WORKERS processes sharing one port, NODE_ENV=production.
//
// One confidential client (client_secret_basic) comes from the environment.
// PEER_TOKEN_FORMAT=opaque issues the library's default opaque tokens; =jwt
// makes every token request target one resource server whose access tokens
// are JWTs, signed with PEER_JWT_ALG: RS256, the library's default, or
// ES256, netcalc's. Tokens live in the library's built-in memory adapter: no
// database write, unlike the other servers.

import cluster from 'node:cluster';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`The environment variable ${name} is not set.`);
  return value;
};

const port = Number(env('PEER_PORT'));
const workers = Number(env('PEER_WORKERS'));
const resource = 'urn:netcalc-bench:api';

function startPrimary() {
  // The primary makes the signing keys, so that every worker signs with the
  // same ones and one JWKS verifies any token.
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const keys = [
    { ...rsa.export({ format: 'jwk' }), kid: 'bench-rs256', alg: 'RS256' },
    { ...ec.export({ format: 'jwk' }), kid: 'bench-es256', alg: 'ES256' },
  ];
  for (let i = 0; i < workers; i += 1) {
    cluster.fork({ PEER_JWKS: JSON.stringify({ keys }) });
  }
  // A worker that dies mid-run would halve the capacity unnoticed: fail loudly.
  cluster.on('exit', (worker, code) => {
    console.error(`Worker ${worker.process.pid} exited (${code}); stopping.`);
    process.exit(1);
  });
}

function resourceServer() {
  const server = { scope: 'api', audience: resource, accessTokenFormat: 'jwt' };
  const alg = env('PEER_JWT_ALG');
  // Without a `jwt.sign`, the library signs with its default algorithm.
  return alg === 'RS256' ? server : { ...server, jwt: { sign: { alg } } };
}

function startWorker() {
  const jwt = env('PEER_TOKEN_FORMAT') === 'jwt';
  const provider = new Provider(`http://127.0.0.1:${port}`, {
    clients: [
      {
        client_id: env('PEER_CLIENT_ID'),
        client_secret: env('PEER_CLIENT_SECRET'),
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: 'api',
      },
    ],
    jwks: JSON.parse(env('PEER_JWKS')),
    scopes: ['api'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Without a resource the token stays opaque; with one it is a JWT.
        defaultResource: async () => (jwt ? resource : undefined),
        getResourceServerInfo: async () => resourceServer(),
      },
    },
  });
  provider.listen(port, '127.0.0.1');
}

if (cluster.isPrimary) {
  startPrimary();
} else {
  startWorker();
}
