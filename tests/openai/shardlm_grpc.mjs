// shardlm's gRPC API for the Node tests in this folder: the protos of
// protos/ loaded once (the ShardLM client API and the workers' Stage API),
// a ShardLM stub with the bearer metadata for an API key, and a streaming
// call (Generate or Chat) collected into its text and summary.
import {dirname, join} from "node:path";
import {fileURLToPath} from "node:url";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const protoDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "protos");
const definition = protoLoader.loadSync(
    [join(protoDir, "shardlm/v1/shardlm.proto"), join(protoDir, "shardlm/v1/stage.proto")],
    {includeDirs: [protoDir], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true});
export const {shardlm} = grpc.loadPackageDefinition(definition);
export {grpc};

// A ShardLM stub on address, and the metadata every call passes: the API key
// as a bearer token (empty metadata without a key).
export function shardlmClient(address, apiKey) {
  const stub = new shardlm.v1.ShardLM(address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (apiKey) metadata.set("authorization", `Bearer ${apiKey}`);
  return {stub, metadata};
}

// A streaming call (method "Generate" or "Chat") collected: the chunks' text
// and the summary (null when the stream ended without one).
export function collectStream({stub, metadata}, method, request, timeoutMs = 60_000) {
  return new Promise((resolve, reject) => {
    let text = "";
    let summary = null;
    const call = stub[method](request, metadata, {deadline: Date.now() + timeoutMs});
    call.on("data", (msg) => {
      if (msg.chunk) text += msg.chunk.text;
      if (msg.summary) summary = msg.summary;
    });
    call.on("error", reject);
    call.on("end", () => resolve({text, summary}));
  });
}
