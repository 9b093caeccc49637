// The official Node.js SDK (tencentcloud-sdk-nodejs) through a contract's whole life against the essbasic
// sandbox, pointed at it the way a developer points it anywhere: endpoint HOST:PORT, nothing else. Driven by
// spec/sandbox_node_sdk_spec.lua, which checks what it prints (one JSON line).
//   node spec/node/sdk_lifecycle.js SDK_DIR HOST:PORT SECRET_ID SECRET_KEY APP_ID PDF_FILE
const [sdkDir, endpoint, secretId, secretKey, appId, pdfFile] = process.argv.slice(2);
const fs = require("fs");
const http = require("http");
const path = require("path");
const { essbasic } = require(path.resolve(sdkDir, "node_modules/tencentcloud-sdk-nodejs/tencentcloud/services/essbasic"));

const client = new essbasic.v20210526.Client({
  credential: { secretId, secretKey },
  region: "",
  profile: { httpProfile: { endpoint, protocol: "http://", reqTimeout: 10 } },
});
const Agent = { AppId: appId, ProxyOrganizationOpenId: "node_org", ProxyOperator: { OpenId: "node_operator" } };

// A plain HTTP request (the signer's page and the download are not API calls).
function request(method, url, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: body ? { "Content-Type": "application/json" } : {} }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    if (body) req.write(body);
    req.end();
  });
}

(async () => {
  const out = {};
  // upload: the SDK's UploadFiles, to the same endpoint (the sandbox serves the file domain on its port)
  const up = await client.UploadFiles({ Agent, BusinessType: "DOCUMENT", FileInfos: [
    { FileName: "contract.pdf", FileBody: fs.readFileSync(pdfFile).toString("base64") }] });
  out.fileIds = up.FileIds;
  // group: two contracts, a person and an employee of the sub-company, Deadline 0 as Tencent's example sends it
  const approvers = [
    { ApproverType: "PERSON", Name: "张三", Mobile: "13800138000" },
    { ApproverType: "ORGANIZATION", Name: "李四", Mobile: "13900139000", OpenId: "node_hr",
      OrganizationName: "示例科技有限公司", OrganizationOpenId: "node_org" },
  ];
  const group = await client.ChannelCreateFlowGroupByFiles({ Agent, FlowGroupName: "入职签约", FlowFileInfos: [
    { FileIds: [up.FileIds[0]], FlowName: "劳动合同", Deadline: 0, FlowApprovers: approvers, CustomerData: "n-1" },
    { FileIds: [up.FileIds[0]], FlowName: "保密协议", Deadline: 0, FlowApprovers: approvers, CustomerData: "n-2" },
  ] });
  out.flowGroupId = group.FlowGroupId;
  out.flowIds = group.FlowIds;
  // links: one per person for the group
  const links = await client.CreateSignUrls({ Agent, FlowGroupId: group.FlowGroupId });
  out.links = links.SignUrlInfos.length;
  // sign: each person through their link, in order
  out.signed = [];
  for (const info of links.SignUrlInfos) {
    const token = new URL(info.SignUrl).searchParams.get("token");
    const res = await request("POST", new URL("/sandbox/sign", info.SignUrl).toString(), JSON.stringify({ token }));
    out.signed.push(res.status);
  }
  // status
  const detail = await client.DescribeFlowDetailInfo({ Agent, FlowGroupId: group.FlowGroupId });
  out.statuses = detail.FlowInfo.map((f) => f.FlowStatus);
  out.flowMessage = detail.FlowInfo[0].FlowMessage; // sent by the API even when empty
  // download
  const docs = await client.DescribeResourceUrlsByFlows({ Agent, FlowIds: group.FlowIds });
  const url = docs.FlowResourceUrlInfos[0].ResourceUrlInfos[0].Url;
  const pdf = await request("GET", url);
  out.download = { status: pdf.status, head: pdf.body.subarray(0, 5).toString("latin1"), bytes: pdf.body.length };
  // a refusal comes back as the SDK's error with the API's code
  try {
    await client.DescribeFlowDetailInfo({ Agent, FlowGroupId: "nope" });
  } catch (e) {
    out.refusal = e.code;
  }
  process.stdout.write(JSON.stringify(out) + "\n");
})().catch((e) => { process.stdout.write(JSON.stringify({ error: String(e && (e.code || e.message) || e) }) + "\n"); process.exit(1); });
