#!/usr/bin/env node
// A gRPC client in another language than the server, built from nothing but
// the .proto files: streams a generation from a shardlm coordinator.
//
//   node generate.mjs HOST:PORT "Once upon a time" [MAX_TOKENS] [--json]
//
// Prints the text as it arrives; with --json prints one JSON object per
// stream message (what the tests compare).
import {dirname, join} from "node:path";
import {fileURLToPath} from "node:url";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const args = process.argv.slice(2).filter((a) => a !== "--json");
const json = process.argv.includes("--json");
if (args.length < 2 || process.argv.includes("--help")) {
  console.error("usage: node generate.mjs HOST:PORT PROMPT [MAX_TOKENS] [--json]");
  process.exit(args.length < 2 ? 2 : 0);
}
const [address, prompt, maxTokens = "64"] = args;

const protoDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "protos");
const definition = protoLoader.loadSync(join(protoDir, "shardlm/v1/shardlm.proto"), {
  includeDirs: [protoDir], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
});
const {shardlm} = grpc.loadPackageDefinition(definition);
const client = new shardlm.v1.ShardLM(address, grpc.credentials.createInsecure());

const call = client.Generate({
  prompt,
  sampling: {temperature: 0, max_tokens: Number(maxTokens)},
}, {deadline: Date.now() + 120_000});
call.on("data", (msg) => {
  if (json) {
    console.log(JSON.stringify(msg.chunk ? {id: msg.chunk.token_id, text: msg.chunk.text}
                                         : {summary: msg.summary}));
  } else if (msg.chunk) {
    process.stdout.write(msg.chunk.text);
  } else if (msg.summary) {
    process.stdout.write(`\n[${msg.summary.finish_reason}] ${msg.summary.generated_tokens} tokens, ` +
        `${msg.summary.generation_tokens_per_second.toFixed(1)} tokens/s\n`);
  }
});
call.on("error", (err) => {
  console.error(`Generate failed: ${err.code} ${err.details}`);
  process.exit(1);
});
call.on("end", () => client.close());
