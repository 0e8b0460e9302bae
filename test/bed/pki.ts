// The bed's own PKI, made with the openssl CLI: a CA, the apiserver's serving cert, an admin client cert in
// system:masters, and the service-account signing key pair. ECDSA P-256 keys: generating them takes milliseconds.
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface Pki {
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  saPublicKey: string;
  saPrivateKey: string;
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

interface CertSpec {
  name: string;
  subject: Record<string, string>;
  extensions: string[];
}

function opensslConfig(spec: CertSpec): string {
  const dn = Object.entries(spec.subject).map(([k, v]) => `${k} = ${v}`);
  return [
    "[req]",
    "distinguished_name = dn",
    "prompt = no",
    "[dn]",
    ...dn,
    "[ext]",
    ...spec.extensions,
    "",
  ].join("\n");
}

async function makeCert(
  dir: string,
  spec: CertSpec,
  ca?: { cert: string; key: string },
): Promise<[string, string]> {
  const config = join(dir, `${spec.name}.cnf`);
  const cert = join(dir, `${spec.name}.crt`);
  const key = join(dir, `${spec.name}.key`);
  await writeFile(config, opensslConfig(spec));
  const signer = ca ? ["-CA", ca.cert, "-CAkey", ca.key] : [];
  // prettier-ignore
  await run("openssl", [
    "req", "-x509", "-new", "-config", config, "-extensions", "ext", ...EC_KEY, ...signer,
    "-keyout", key, "-out", cert, "-days", "30",
  ]);
  return [cert, key];
}

export async function generatePki(dir: string): Promise<Pki> {
  const [caCert, caKey] = await makeCert(dir, {
    name: "ca",
    subject: { CN: "mokd-testbed-ca" },
    extensions: [
      "basicConstraints = critical,CA:TRUE",
      "keyUsage = critical,keyCertSign,cRLSign,digitalSignature",
    ],
  });
  const ca = { cert: caCert, key: caKey };
  const leaf = (usage: string) => [
    "basicConstraints = critical,CA:FALSE",
    "keyUsage = critical,digitalSignature,keyEncipherment",
    `extendedKeyUsage = ${usage}`,
  ];
  const sans =
    "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1";
  const [[servingCert, servingKey], [adminCert, adminKey]] = await Promise.all([
    makeCert(
      dir,
      {
        name: "apiserver",
        subject: { CN: "kube-apiserver" },
        extensions: [...leaf("serverAuth"), `subjectAltName = ${sans}`],
      },
      ca,
    ),
    makeCert(
      dir,
      { name: "admin", subject: { O: "system:masters", CN: "mokd-admin" }, extensions: leaf("clientAuth") },
      ca,
    ),
  ]);
  const saPrivateKey = join(dir, "sa.key");
  const saPublicKey = join(dir, "sa.pub");
  await run("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", saPrivateKey]);
  await run("openssl", ["ec", "-in", saPrivateKey, "-pubout", "-out", saPublicKey]);
  return { caCert, caKey, servingCert, servingKey, adminCert, adminKey, saPublicKey, saPrivateKey };
}
