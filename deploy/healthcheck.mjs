// The container's health check: exit 0 when this node's GET /health answers 200, else 1.
// Plain node (slim images have no curl). It asks the bus on the loopback address with the
// port and scheme the bus itself uses (BUS_PORT or PORT, BUS_TLS_CERT), and accepts the
// bus's own certificate since it only checks this process. /health needs no credentials
// and is exempt from BUS_ENFORCE_HTTPS.
import { get as getHttp } from 'node:http';
import { get as getHttps } from 'node:https';

const env = process.env;
const port = Number(env.BUS_PORT || env.PORT || 8080);
const tls = Boolean(env.BUS_TLS_CERT);
const get = tls ? getHttps : getHttp;

const req = get(
  { host: '127.0.0.1', port, path: '/health', timeout: 3000, rejectUnauthorized: false },
  (res) => {
    res.resume();
    process.exit(res.statusCode === 200 ? 0 : 1);
  },
);
req.on('timeout', () => req.destroy(new Error('timeout')));
req.on('error', (err) => {
  process.stderr.write(`health check: ${err.message}\n`);
  process.exit(1);
});
