// node-oidc-provider as a client-credentials authorization server, run the
// way node services run in production on a small machine: a `cluster` of
// PEER_WORKERS processes sharing one port, NODE_ENV=production.
//
// One confidential client (client_secret_basic) comes from the environment.
// PEER_TOKEN_FORMAT=opaque issues the library's default opaque tokens; =jwt
// makes every token request target one resource server whose access tokens
// are ES256 JWTs, netcalc's default algorithm. Tokens live in the library's
// built-in memory adapter: no database write, unlike the other servers.

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
  // The primary makes the signing key, so that every worker signs with it
  // and one JWKS verifies any token.
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'bench', alg: 'ES256' };
  for (let i = 0; i < workers; i += 1) {
    cluster.fork({ PEER_JWK: JSON.stringify(jwk) });
  }
  // A worker that dies mid-run would halve the capacity unnoticed: fail loudly.
  cluster.on('exit', (worker, code) => {
    console.error(`Worker ${worker.process.pid} exited (${code}); stopping.`);
    process.exit(1);
  });
}

function resourceServer() {
  return {
    scope: 'api',
    audience: resource,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'ES256' } },
  };
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
        // The library's default is RS256; the only key here is an EC key.
        id_token_signed_response_alg: 'ES256',
        scope: 'api',
      },
    ],
    jwks: { keys: [JSON.parse(env('PEER_JWK'))] },
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
