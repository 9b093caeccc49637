// The official Node.js SDK's side of bench/node_sdk.lua: sequential ChannelCreateFlowGroupByFiles calls with the
// SDK's defaults (its own signing and HTTP), against the local envelope server, for a given time.
//   node bench/node/sequential.js SDK_DIR HOST:PORT REQUEST.json SECONDS  → prints calls per second
const [sdkDir, endpoint, requestFile, seconds] = process.argv.slice(2);
const fs = require("fs");
const { essbasic } = require(require("path").resolve(sdkDir, "node_modules/tencentcloud-sdk-nodejs/tencentcloud/services/essbasic"));
const Client = essbasic.v20210526.Client;
const params = JSON.parse(fs.readFileSync(requestFile, "utf8"));
const client = new Client({
  credential: { secretId: "AKIDbenchmark0000000000000000000000", secretKey: "bench-secret-key-not-real-0000000000" },
  region: "",
  profile: { httpProfile: { endpoint, protocol: "http://", reqTimeout: 10 } },
});

(async () => {
  await client.ChannelCreateFlowGroupByFiles(params); // warm up (the first call loads and connects)
  const limit = Number(seconds) * 1000;
  const t0 = Date.now();
  let n = 0;
  while (Date.now() - t0 < limit) {
    const resp = await client.ChannelCreateFlowGroupByFiles(params);
    if (!resp.FlowGroupId) throw new Error("no FlowGroupId in " + JSON.stringify(resp));
    n++;
  }
  process.stdout.write(String(n / ((Date.now() - t0) / 1000)) + "\n");
})().catch((e) => { console.error(e); process.exit(1); });
