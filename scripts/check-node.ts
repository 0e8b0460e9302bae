// Fails fast, with a plain message, when the test command runs on a Node older than the project needs
// (@kubernetes/client-node 2.x and its undici need >= 22.19). `npm run` puts node_modules/.bin first on PATH,
// where the `node` devDependency provides Node 24.
const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(
    `Node ${process.versions.node} is too old: need >= 22.19 (run through npm so node_modules/.bin/node is used)`,
  );
  process.exit(1);
}
