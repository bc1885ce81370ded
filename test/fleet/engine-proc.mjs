// A tiny engine process for managed-replica tests: `node engine-proc.mjs <port> <name>`.
// Serves /health, /metrics and a chat completion naming itself; exits on SIGTERM.
import { createServer } from 'node:http';
const port = Number(process.argv[2]);
const name = process.argv[3] ?? 'proc';
const server = createServer((req, res) => {
  if (req.url === '/health') return res.writeHead(200).end();
  if (req.url === '/metrics') return res.writeHead(200, { 'content-type': 'text/plain' }).end('vllm:num_requests_running{model_name="m"} 0\nvllm:num_requests_waiting{model_name="m"} 0\n');
  req.resume();
  req.on('end', () => {
    const b = JSON.stringify({ id: 'x', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: `pid ${process.pid} ${name}` }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
    res.writeHead(200, { 'content-type': 'application/json' }).end(b);
  });
});
server.listen(port, '127.0.0.1', () => console.log(`engine ${name} listening on ${port}`));
process.on('SIGTERM', () => {
  console.log(`engine ${name} got SIGTERM`);
  server.close();
  process.exit(0);
});
