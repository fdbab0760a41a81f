// check_onnx.mjs MODEL.onnx LOGITS.json [TOL] - runs a kiln ONNX export in
// onnxruntime's CPU runtime (onnxruntime-node) on the inputs of LOGITS.json
// (written by tests/tools/export_logits) and compares its logits with kiln's
// eval logits there: prints the largest absolute difference and exits 1 if it
// exceeds TOL (default 1e-4), if a shape differs or if the logits are
// degenerate (every sample the same, which would make the check vacuous).
import { readFileSync } from 'node:fs';
import ort from 'onnxruntime-node';

const [model, ref, tolArg] = process.argv.slice(2);
if (!model || !ref) {
    console.error('usage: node check_onnx.mjs MODEL.onnx LOGITS.json [TOL]');
    process.exit(2);
}
const tol = tolArg ? Number(tolArg) : 1e-4;
const want = JSON.parse(readFileSync(ref, 'utf8'));
const [n, c, h, w] = want.shape;
const K = want.classes;

const session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'] });
if (session.inputNames.join() !== 'input' || session.outputNames.join() !== 'logits') {
    console.error(`FAIL: graph inputs ${session.inputNames} outputs ${session.outputNames}`);
    process.exit(1);
}
const input = new ort.Tensor('float32', Float32Array.from(want.input), [n, c, h, w]);
const out = (await session.run({ input })).logits;
if (out.dims.join() !== [n, K].join()) {
    console.error(`FAIL: logits of shape [${out.dims}], kiln's are [${n},${K}]`);
    process.exit(1);
}
let worst = 0;
for (let i = 0; i < n * K; i++) worst = Math.max(worst, Math.abs(out.data[i] - want.logits[i]));
let spread = 0;
for (let i = K; i < n * K; i++) spread = Math.max(spread, Math.abs(want.logits[i] - want.logits[i % K]));
console.log(`onnxruntime ${ort.env.versions?.common ?? ''}: ${n}x${K} logits, max |onnx - kiln| = ${worst.toExponential(3)}`);
if (!(worst <= tol)) {
    console.error(`FAIL: onnxruntime's logits differ from kiln's by ${worst} (> ${tol})`);
    process.exit(1);
}
if (n > 1 && spread < 1e-6) {
    console.error('FAIL: every sample has the same logits; the comparison would prove nothing');
    process.exit(1);
}
